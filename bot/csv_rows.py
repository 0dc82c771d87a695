"""The part of reading an admin CSV file that every import shares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class _Reader(Protocol):
    @property
    def line_num(self) -> int: ...

    def __iter__(self) -> Iterator[list[str]]: ...


def data_records(reader: _Reader) -> Iterator[tuple[int, list[str]]]:
    """The records after the header that are not blank, each with the line it starts on.

    A quoted field may span lines, so a record is reported by its first line, not by
    ``line_num`` (which is where it ended). ``csv.Error`` propagates to the caller.
    """
    next_line = reader.line_num + 1
    for record in reader:
        line, next_line = next_line, reader.line_num + 1
        if any(field.strip() for field in record):
            yield line, record

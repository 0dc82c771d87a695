"""Reading a JSON request body the same way in every HTTP endpoint of ours (the usage API,
the demo's API): every way a body can fail to parse is one ``ValueError`` with a short reason."""

from __future__ import annotations

import json
from typing import Any


def parse(body: bytes) -> Any:
    """The body's JSON value; ``ValueError`` (its first line, cut short) if it has none.

    Deep nesting (``[[[[…``) makes ``json`` raise ``RecursionError``, and a body well under
    any size limit can do it: caught here so that it is bad input, never a 500."""
    try:
        return json.loads(body)
    except ValueError as exc:  # bad UTF-8 and bad JSON alike
        raise ValueError(str(exc).splitlines()[0][:120]) from None
    except RecursionError:
        raise ValueError("nested too deep") from None

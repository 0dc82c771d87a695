"""Text from outside (Slack payloads, files) made storable in any database we support."""

from __future__ import annotations


def storable(value: object) -> str:
    """``value`` as text without NUL (PostgreSQL refuses it) or lone surrogates (no driver can
    encode them); '' when it is not text at all."""
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")

"""``POST /api/usage``: usage signals pushed by other systems, behind a bearer token.

Answers (always JSON, never a 500 for anything a client sends):
404 the API is not enabled (LICENSEBOT_API_TOKEN unset) · 405 not a POST · 401 missing or wrong
token · 413 body over 5 MB · 400 not JSON or not the expected shape, or signals that cannot be
recorded (``problems`` lists each by item index, counted from 0) · 503 the database is
unreachable · 200 ``{"recorded": N, "ignored_older": M}``.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot import json_body
from bot.directory import quoted
from bot.runtime import Runtime
from bot.usage import UsageImportError, UsageRow, record_usage

log = logging.getLogger("licensebot.usage_api")

PATH = "/api/usage"
MAX_BODY = 5 * 1024 * 1024
ACTOR = "api"
FIELDS = ("product_id", "user", "last_used_at")
_MAX_REPORTED = 20
_CHUNK = 64 * 1024

StartResponse = Callable[..., Any]


def handle_usage(
    rt: Runtime, api_token: str | None, environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes]:
    """The WSGI answer to one request on ``/api/usage``."""

    def answer(
        status: str, body: dict[str, Any], headers: list[tuple[str, str]] | None = None
    ) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json"), *(headers or [])])
        return [json.dumps(body).encode()]

    if not api_token:
        # Without a token there is no way to authenticate a caller: the API does not exist.
        return answer(
            "404 Not Found", {"ok": False, "error": "not enabled: set LICENSEBOT_API_TOKEN"}
        )
    if environ.get("REQUEST_METHOD") != "POST":
        return answer(
            "405 Method Not Allowed", {"ok": False, "error": "use POST"}, [("Allow", "POST")]
        )
    if not _authorized(environ.get("HTTP_AUTHORIZATION", ""), api_token):
        return answer(
            "401 Unauthorized",
            {"ok": False, "error": "missing or wrong bearer token"},
            [("WWW-Authenticate", 'Bearer realm="licensebot"')],
        )
    body = _read_body(environ)
    if body is None:
        return answer(
            "413 Content Too Large",
            {"ok": False, "error": f"body over {MAX_BODY // (1024 * 1024)} MB; send fewer items"},
        )
    rows, problems = _parse(body)
    if problems:
        return answer("400 Bad Request", _invalid(problems))
    try:
        result = record_usage(rt, rows, source="api", actor=ACTOR, label="POST /api/usage")
    except UsageImportError as exc:
        return answer("400 Bad Request", _invalid(exc.problems or [exc.message]))
    except SQLAlchemyError as exc:
        # The client did nothing wrong and may retry; never a row value in the log line.
        log.warning("event=usage_api_database_error error=%s", type(exc).__name__)
        return answer("503 Service Unavailable", {"ok": False, "error": "database unavailable"})
    return answer("200 OK", {"recorded": result.recorded, "ignored_older": result.ignored_older})


def _authorized(header: str, token: str) -> bool:
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Constant time, so the response time does not tell how much of a guess was right.
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The body, or None when it is over MAX_BODY (decided without reading it all if we can)."""
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        return None
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    # Read at most one byte past the limit: a body without a length cannot make us buffer more.
    while size <= MAX_BODY:
        part = stream.read(min(_CHUNK, MAX_BODY + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return None if size > MAX_BODY else b"".join(parts)


def _parse(body: bytes) -> tuple[list[UsageRow], list[str]]:
    """The items as rows (a malformed item carries its problem), or the body's own problem."""
    try:
        data = json_body.parse(body)
    except ValueError as exc:
        return [], [f"body is not JSON ({exc})"]
    if not isinstance(data, list):
        return [], [
            'body must be a JSON array of {"product_id": ..., "user": ..., "last_used_at": ...}'
        ]
    rows: list[UsageRow] = []
    for index, item in enumerate(data):
        where = f"item {index}"
        if not isinstance(item, dict):
            problem = f"must be an object with {', '.join(FIELDS)}"
            rows.append(UsageRow(where, "", "", "", problem=problem))
            continue
        item_problems = [f"{name} is missing" for name in FIELDS if name not in item] + [
            f"{name} must be a string"
            for name in FIELDS
            if name in item and not isinstance(item[name], str)
        ]
        unknown = sorted(quoted(str(k)) for k in item if k not in FIELDS)
        if unknown:
            item_problems.append(f"unknown field(s) {', '.join(unknown)}")
        if item_problems:
            # Reported in item order with the catalog and directory checks of the other items.
            rows.append(UsageRow(where, "", "", "", problem="; ".join(item_problems)))
            continue
        rows.append(UsageRow(where, item["product_id"], item["user"], item["last_used_at"]))
    return rows, []


def _invalid(problems: list[str]) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "invalid; nothing was recorded",
        "problems": problems[:_MAX_REPORTED],
        "problem_count": len(problems),
    }

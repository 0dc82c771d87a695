"""A local Okta org that plays the System Log API over real HTTP (``GET /api/v1/logs``).

What it does as Okta does (https://developer.okta.com/docs/reference/api/system-log/):
- ``Authorization: SSWS <token>`` is required; anything else is a 401 with Okta's error body.
- ``since`` (inclusive) and ``until`` (exclusive) bound ``published``; ``filter`` supports
  ``eventType eq "..."``; ``sortOrder=ASCENDING`` only; ``limit`` 1..1000 (default 100).
- Polling queries (no ``until``) always answer ``Link: <...>; rel="self"`` and
  ``Link: <...&after=CURSOR>; rel="next"``; the cursor is opaque (``<ms>_<sequence>``) and a page
  after it holds only events stored later. An empty page links to itself.
- Every answer carries ``X-Rate-Limit-Limit``/``-Remaining``/``-Reset`` (epoch seconds of the
  injected clock).
Test controls: ``rate_limit_next(n, reset_in=..., after=k)`` (429s), ``fail_next(n, status=500,
after=k)`` (each for the n requests following the next k), ``remaining_zero_next(n)`` (a 200
using the window's last request), ``link_host`` (serve next links on another host),
``next_links = False`` (answer without a next link).
``requests`` records each request's path, query and headers.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

RATE_LIMIT = 600


def okta_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sso_event(
    *,
    email: str,
    app_id: str,
    at: datetime,
    app_name: str = "App",
    result: str = "SUCCESS",
    event_type: str = "user.authentication.sso",
) -> dict[str, Any]:
    """A LogEvent with the real shape of an SSO sign-in to an app."""
    return {
        "uuid": str(uuid.uuid4()),
        "published": okta_time(at),
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": "User single sign on to app",
        "actor": {
            "id": "00u" + uuid.uuid4().hex[:17],
            "type": "User",
            "alternateId": email,
            "displayName": email.split("@")[0].title(),
            "detailEntry": None,
        },
        "client": {"ipAddress": "198.51.100.7", "userAgent": {"browser": "CHROME"}},
        "outcome": {"result": result, "reason": None},
        "target": [
            {
                "id": app_id,
                "type": "AppInstance",
                "alternateId": app_name,
                "displayName": app_name,
                "detailEntry": {"signOnModeType": "SAML_2_0"},
            },
            {
                "id": "0ua" + uuid.uuid4().hex[:17],
                "type": "AppUser",
                "alternateId": email,
                "displayName": email.split("@")[0].title(),
                "detailEntry": None,
            },
        ],
    }


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeOkta:
    token: str
    now: Callable[[], datetime]
    url: str = ""
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (sequence, event)
    requests: list[Recorded] = field(default_factory=list)
    link_host: str | None = None
    next_links: bool = True  # False: answer no next link (as for a bounded query)
    # request number (1-based, over all requests) -> (status, reset_in) to answer instead
    _plan: dict[int, tuple[int, int]] = field(default_factory=dict)
    _remaining_zero: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *events: dict[str, Any]) -> None:
        """Store events (in this order: their sequence is their persistence order)."""
        with self._lock:
            for event in events:
                self.events.append((len(self.events) + 1, event))

    def rate_limit_next(self, n: int, *, reset_in: int, after: int = 0) -> None:
        self._schedule(n, after, (429, reset_in))

    def fail_next(self, n: int, *, status: int = 500, after: int = 0) -> None:
        self._schedule(n, after, (status, 0))

    def _schedule(self, n: int, after: int, answer: tuple[int, int]) -> None:
        first = len(self.requests) + after + 1
        self._plan.update({first + i: answer for i in range(n)})

    def remaining_zero_next(self, n: int) -> None:
        self._remaining_zero += n

    # --- serving -----------------------------------------------------------------------------

    def answer(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        self.requests.append(Recorded(path, query, headers))
        reset = int(self.now().timestamp()) + 60
        if path != "/api/v1/logs":
            return self._error(
                404, "E0000022", "The endpoint does not support the provided HTTP method", reset
            )
        if headers.get("authorization") != f"SSWS {self.token}":
            return self._error(401, "E0000011", "Invalid token provided", reset)
        planned = self._plan.pop(len(self.requests), None)
        if planned is not None:
            status, reset_in = planned
            if status == 429:
                reset = int(self.now().timestamp()) + reset_in
                return self._error(
                    429,
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                    reset,
                    remaining=0,
                )
            return self._error(status, "E0000009", "Internal Server Error", reset)
        if query.get("sortOrder", "ASCENDING") != "ASCENDING":
            return self._error(400, "E0000001", "Api validation failed: sortOrder", reset)
        limit = int(query.get("limit", "100"))
        if not 1 <= limit <= 1000:
            return self._error(400, "E0000001", "Api validation failed: limit", reset)
        wanted: str | None = None
        if "filter" in query:
            match = re.fullmatch(r'eventType eq "([^"]+)"', query["filter"])
            if match is None:
                return self._error(400, "E0000031", "Invalid search criteria.", reset)
            wanted = match.group(1)
        since = _parse(query["since"]) if "since" in query else None
        until = _parse(query["until"]) if "until" in query else None
        after = int(query["after"].split("_")[1]) if "after" in query else 0
        with self._lock:
            matching = [
                (seq, e)
                for seq, e in self.events
                if seq > after
                and (wanted is None or e["eventType"] == wanted)
                and (since is None or _parse(e["published"]) >= since)
                and (until is None or _parse(e["published"]) < until)
            ][:limit]
        links = [("Link", f'<{self._link(query)}>; rel="self"')]
        if until is None and self.next_links:  # a polling query: always a next link
            last = matching[-1] if matching else None
            nxt = dict(query)
            if last is not None:
                ms = int(_parse(last[1]["published"]).timestamp() * 1000)
                nxt["after"] = f"{ms}_{last[0]}"
            links.append(("Link", f'<{self._link(nxt)}>; rel="next"'))
        remaining = RATE_LIMIT - 1
        if self._remaining_zero:
            self._remaining_zero -= 1
            remaining = 0
        body = json.dumps([e for _, e in matching]).encode()
        return 200, [*links, *self._limits(reset, remaining)], body

    def _link(self, query: dict[str, str]) -> str:
        base = self.url if self.link_host is None else f"https://{self.link_host}"
        return f"{base}/api/v1/logs?{urlencode(query)}"

    def _limits(self, reset: int, remaining: int) -> list[tuple[str, str]]:
        return [
            ("X-Rate-Limit-Limit", str(RATE_LIMIT)),
            ("X-Rate-Limit-Remaining", str(remaining)),
            ("X-Rate-Limit-Reset", str(reset)),
        ]

    def _error(
        self, status: int, code: str, summary: str, reset: int, remaining: int = RATE_LIMIT - 1
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        body = {
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": "oae" + uuid.uuid4().hex[:19],
            "errorCauses": [],
        }
        return status, self._limits(reset, remaining), json.dumps(body).encode()


def _parse(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@contextmanager
def serve(token: str, now: Callable[[], datetime]) -> Iterator[FakeOkta]:
    """A FakeOkta listening on 127.0.0.1 (a free port) for the duration of the block."""
    fake = FakeOkta(token=token, now=now)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = fake.answer(parts.path, query, headers)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # quiet: the test asserts on fake.requests

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll: shutdown() waits for it at the end of every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""A provisioning-webhook receiver over real HTTP: records every POST and checks its signature
the way the README tells receivers to (written here independently of bot/webhooks.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    verified: bool  # the signature matched the receiver's secret
    status: int  # what the receiver answered

    @property
    def event(self) -> dict[str, Any]:
        parsed = json.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed


class WebhookReceiver:
    def __init__(self, secret: str, *, now: Callable[[], float]) -> None:
        self.secret = secret
        self._now = now
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._failures: list[int] = []  # statuses to answer next, in order
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/provision?token=url-secret"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def fail_next(self, status: int, *, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """The README's receiver check: HMAC of "<timestamp>." + raw body, recent timestamp."""
        timestamp = headers.get("x-licensebot-timestamp", "")
        signature = headers.get("x-licensebot-signature", "")
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        if not timestamp.isdigit() or abs(self._now() - int(timestamp)) > 300:
            return False
        return hmac.compare_digest("sha256=" + expected, signature)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = receiver.verify(headers, body)
                with receiver._lock:
                    if receiver._failures:
                        status = receiver._failures.pop(0)
                    else:
                        status = 204 if verified else 401
                    receiver._received.append(Received(self.path, headers, body, verified, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the test asserts on what was received

        return Handler

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

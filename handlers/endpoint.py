"""Bolt's WSGI adapter, guarded against bodies Bolt mishandles.

- Bolt parses any form body that merely contains the text "payload" as an interaction
  (``slack_bolt/request/internals.py::parse_body``), so ``/license request figma payload team``
  would reach no listener and get a 404. Such a slash command is parsed as the form it is.
- Bolt crashes (a 500, or an exception in its own middleware) on some body shapes Slack never
  sends: a non-UTF-8 body, a ``user`` that is a number, ``actions`` that is not a list of
  objects... A correctly signed body of such a shape gets 400; an unsigned one still goes to
  Bolt, which answers 401.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.context import BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_context
from slack_bolt.response import BoltResponse

from handlers import envelope

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger("licensebot.handlers")


class SlackEndpoint(SlackRequestHandler):
    def __init__(self, app: App, *, signing_secret: str, path: str = "/slack/events") -> None:
        super().__init__(app, path=path)
        self._key = signing_secret.encode()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        parsed = envelope.parse(raw, environ.get("CONTENT_TYPE"))
        why = parsed if isinstance(parsed, str) else envelope.problem(parsed)
        if why is None:
            return super().__call__(environ, start_response)
        if not self._signed(
            raw,
            environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""),
            environ.get("HTTP_X_SLACK_SIGNATURE", ""),
        ):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error":"invalid request"}']
        log.warning("event=malformed_request problem=%r", why)
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [b'{"ok":false,"error":"malformed_request"}']

    def _signed(self, raw: bytes, timestamp: str, signature: str) -> bool:
        # slack_sdk's SignatureVerifier decodes the body as UTF-8 first; here it may not be.
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return False
        base = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self._key, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        raw = request.get_body()
        bolt_request = BoltRequest(
            body=raw, query=request.query_string, headers=request.get_headers()
        )
        if not bolt_request.body and raw and not raw.lstrip().startswith("{"):
            form = dict(parse_qsl(raw, keep_blank_values=True))
            if "payload" not in form:
                bolt_request.body = form
                bolt_request.context = build_context(BoltContext({}), form)
        return self.app.dispatch(bolt_request)

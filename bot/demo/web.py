"""The demo's pages and JSON API (/demo…), in front of the bot's own WSGI app.

The browser never signs anything: it asks this API, which plays Slack's servers through
``SlackSender`` (signed slash commands, block_actions, view_submission to ``/slack/events``)
and reads what each person sees from the ``SlackSim`` in this process. Every other path goes to
the bot unchanged. Answers are JSON; a refusal is ``{"ok": false, "error": "<sentence>"}`` with
400 (bad input) or 404 (unknown user, message, view or file). docs/demo.md and the
tests in tests/demo describe the contract with the page.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from bot import json_body
from bot.app import StartResponse, WSGIApp
from bot.clock import Clock
from bot.demo import seed
from bot.demo.controls import MAX_DAYS, Controls
from bot.errors import LicenseBotError
from bot.slacksim import Message, SlackSender, SlackSim, View
from bot.slacksim.blockkit import iter_elements

log = logging.getLogger("licensebot.demo")

JSON = dict[str, Any]

STATIC = Path(__file__).resolve().parent / "static"
NOTICE = (
    "This is a local simulation of Slack running on your machine: nothing is sent to Slack. "
    "The bot, its database and its rules are the real licensebot; the workspace, the people "
    "and the products are made up."
)
MAX_BODY = 64 * 1024
MAX_COMMAND = 4000  # what Slack's message box takes, roughly
COMMAND = "/license"
# Names the page's own files may have: no folders, no dot-files, nothing to climb out with.
_STATIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9]+)+")
_FILE_ID = re.compile(r"F[A-Z0-9]{1,30}")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The page loads only its own files; Block Kit images may come from anywhere (image_url).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https: http:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SELECTS = frozenset({"static_select", "radio_buttons", "overflow", "users_select"})


class _Refused(Exception):
    """A request the API answers with ``status`` and a sentence saying what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> _Refused:
    return _Refused(400, message)


def _unknown(message: str) -> _Refused:
    return _Refused(404, message)


class DemoWeb:
    """The WSGI app ``licensebot demo`` serves: the demo routes, then the bot's app."""

    def __init__(
        self,
        *,
        sim: SlackSim,
        sender: SlackSender,
        controls: Controls,
        clock: Clock,
        bot_app: WSGIApp,
        static_dir: Path = STATIC,
    ) -> None:
        self._sim = sim
        self._sender = sender
        self._controls = controls
        self._clock = clock
        self._bot_app = bot_app
        self._static = static_dir.resolve()
        self._personas = {p.user_id: p for p in seed.PERSONAS}
        # Changes the sim cannot see (the clock moving) also move the state's version.
        self._own_changes = 0
        self._lock = threading.Lock()
        self._api: dict[tuple[str, str], Callable[[dict[str, Any]], JSON]] = {
            ("GET", "personas"): self._get_personas,
            ("GET", "state"): self._get_state,
            ("POST", "command"): self._post_command,
            ("POST", "action"): self._post_action,
            ("POST", "submit"): self._post_submit,
            ("POST", "close"): self._post_close,
            ("POST", "home"): self._post_home,
            ("POST", "control"): self._post_control,
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "/")
        if path != "/" and path != "/demo" and not path.startswith("/demo/"):
            return self._bot_app(environ, start_response)
        try:
            _check_host(environ)
            return self._route(path, environ, start_response)
        except _Refused as refused:
            return _json(start_response, refused.status, {"ok": False, "error": refused.message})

    # -- routing --

    def _route(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        if path.startswith("/demo/api/"):
            return self._call_api(method, path.removeprefix("/demo/api/"), environ, start_response)
        if method not in ("GET", "HEAD"):
            raise _Refused(405, f"{path} answers GET only.")
        if path == "/":
            start_response("302 Found", [("Location", "/demo"), ("Content-Length", "0")])
            return [b""]
        if path in ("/demo", "/demo/"):
            return self._static_file("index.html", method, start_response)
        if path.startswith("/demo/static/"):
            return self._static_file(path.removeprefix("/demo/static/"), method, start_response)
        if path.startswith("/demo/files/"):
            return self._shared_file(path.removeprefix("/demo/files/"), method, start_response)
        raise _unknown(f"There is no demo page at {path}; open /demo.")

    def _static_file(
        self, name: str, method: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        missing = _unknown(f"The demo has no file {name[:80]!r}.")
        if not _STATIC_NAME.fullmatch(name):
            raise missing
        path = (self._static / name).resolve()
        if path.parent != self._static or not path.is_file():
            raise missing
        body = path.read_bytes()
        suffix = path.suffix.lower()
        ctype = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = [
            ("Content-Type", ctype),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if suffix == ".html":
            headers += [("Content-Security-Policy", _CSP), ("Referrer-Policy", "no-referrer")]
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]

    def _shared_file(
        self, file_id: str, method: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        found = (
            next((f for f in self._sim.files if f.id == file_id), None)
            if _FILE_ID.fullmatch(file_id)
            else None
        )
        if found is None:
            raise _unknown(f"No file {file_id[:40]!r} was shared in this demo.")
        ctype = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", found.name)[:100] or "file"
        # Pictures show in the page; anything else (the digest's CSV) downloads.
        disposition = "inline" if ctype.startswith("image/") else "attachment"
        start_response(
            "200 OK",
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(found.content))),
                ("Content-Disposition", f'{disposition}; filename="{safe_name}"'),
                ("X-Content-Type-Options", "nosniff"),
                ("Cache-Control", "no-cache"),
            ],
        )
        return [b"" if method == "HEAD" else found.content]

    def _call_api(
        self, method: str, name: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        handler = self._api.get((method, name))
        if handler is None:
            allowed = sorted(m for m, n in self._api if n == name)
            if allowed:
                raise _Refused(405, f"/demo/api/{name} answers {allowed[0]} only.")
            names = ", ".join(sorted({n for _, n in self._api}))
            raise _unknown(f"There is no demo API {name[:40]!r}; the API has: {names}.")
        request = _query(environ) if method == "GET" else _body(environ)
        try:
            answer = handler(request)
        except _Refused:
            raise
        except LicenseBotError as exc:
            raise _bad(exc.message) from None
        except httpx.HTTPError as exc:
            return _json(
                start_response,
                502,
                {"ok": False, "error": f"The bot did not answer ({type(exc).__name__})."},
            )
        except Exception:  # a bug here must not reach the page as a traceback
            log.exception("event=demo_api_failed api=%s", name)
            return _json(
                start_response,
                500,
                {
                    "ok": False,
                    "error": "The demo server failed on this request; the terminal running "
                    "`licensebot demo` shows why.",
                },
            )
        return _json(start_response, 200, {"ok": True, **answer})

    # -- the API --

    def _get_personas(self, _request: dict[str, Any]) -> JSON:
        people = {p.user_id: p.name for p in seed.PEOPLE}
        people[self._sim.bot_user_id] = self._sim.bot_name
        return {
            "personas": [
                {"key": p.key, "user_id": p.user_id, "name": p.name, "title": p.title}
                for p in seed.PERSONAS
            ],
            "users": people,
            "bot_user_id": self._sim.bot_user_id,
            "notice": NOTICE,
        }

    def _get_state(self, request: dict[str, Any]) -> JSON:
        user = self._persona(request)
        # Read first: a change landing while the state is read shows at the next poll.
        with self._lock:
            version = self._sim.version + self._own_changes
        conversations = self._conversations(user)
        messages = {
            c["id"]: [
                _message(m, self._sim.bot_user_id)
                for m in self._sim.messages_visible_to(user, c["id"])
            ]
            for c in conversations
            if c["kind"] != "home"
        }
        home = self._sim.home(user)
        modal = self._sim.open_modal(user)
        return {
            "now": self._clock.now().isoformat(timespec="seconds"),
            "version": version,
            "conversations": conversations,
            "messages": messages,
            "home": _view(home) if home else None,
            "modal": _view(modal) if modal else None,
        }

    def _post_command(self, request: dict[str, Any]) -> JSON:
        user = self._persona(request)
        text = _string(request, "text").strip()
        if text != COMMAND and not text.startswith(COMMAND + " "):
            raise _bad(f"Only {COMMAND} commands work here; try `{COMMAND} help`.")
        if len(text) > MAX_COMMAND:
            raise _bad(f"The command is {len(text)} characters long; at most {MAX_COMMAND} fit.")
        channel = request.get("channel") or self._sim.dm_channel(user)
        if not isinstance(channel, str):
            raise _bad("`channel` must be a conversation ID such as the DM's D… ID.")
        self._conversation_of(user, channel)
        response = self._sender.slash(user, text.removeprefix(COMMAND).strip(), channel=channel)
        _acked(response)
        return {}

    def _post_action(self, request: dict[str, Any]) -> JSON:
        user = self._persona(request)
        source = request.get("source")
        if not isinstance(source, dict):
            raise _bad(
                '`source` must be {"type":"message","channel":…,"ts":…} or '
                '{"type":"view","view_id":…}.'
            )
        target = self._source(user, source)
        block_id = _string(request, "block_id")
        action_id = _string(request, "action_id")
        element = next(
            (
                el
                for b, el in iter_elements(target.blocks)
                if b == block_id and el.get("action_id") == action_id
            ),
            None,
        )
        if element is None:
            raise _unknown(f"There is no element {block_id}/{action_id} there (any more).")
        kind = element.get("type")
        try:
            if kind == "button":
                given = request.get("value")
                if given is not None and given != element.get("value"):
                    raise _bad("`value` is not the value of that button.")
                response = self._sender.click(
                    user,
                    target,
                    action_id=action_id,
                    block_id=block_id,
                    value=element.get("value"),
                )
            elif kind in _SELECTS:
                picked = _string(request, "selected_option_value")
                response = self._sender.select(user, target, action_id, picked, block_id=block_id)
            else:
                raise _bad(f"The demo cannot operate {kind} elements; only buttons and selects.")
        except LookupError as exc:
            raise _unknown(_lookup_message(exc)) from None
        _acked(response)
        return {}

    def _post_submit(self, request: dict[str, Any]) -> JSON:
        user = self._persona(request)
        view = self._open_modal(user, _string(request, "view_id"))
        values = request.get("values", {})
        _check_values(values)
        try:
            response = self._sender.submit_view(user, view, values)
        except KeyError as exc:
            raise _bad(str(exc.args[0]) if exc.args else "Unknown input.") from None
        except LookupError as exc:
            raise _bad(_lookup_message(exc)) from None
        except ValueError as exc:
            raise _bad(str(exc)) from None
        _acked(response)
        after = self._sim.view(view.id)
        errors = after.errors if after is not None and after.open and after.errors else {}
        return {"errors": errors}

    def _post_close(self, request: dict[str, Any]) -> JSON:
        user = self._persona(request)
        view = self._open_modal(user, _string(request, "view_id"))
        try:
            response = self._sender.close_view(user, view)
        except LookupError as exc:
            raise _unknown(_lookup_message(exc)) from None
        if response is not None:
            _acked(response)
        return {}

    def _post_home(self, request: dict[str, Any]) -> JSON:
        """The person opened the App Home tab (Slack sends ``app_home_opened``)."""
        user = self._persona(request)
        _acked(self._sender.app_home_opened(user))
        return {}

    def _post_control(self, request: dict[str, Any]) -> JSON:
        action = request.get("action")
        if action == "reclaim":
            return {"message": self._controls.reclaim()}
        if action == "digest":
            return {"message": self._controls.digest()}
        if action == "advance":
            days = request.get("days")
            if isinstance(days, bool) or not isinstance(days, int):
                raise _bad(f"`days` must be a whole number from 1 to {MAX_DAYS}.")
            message = self._controls.advance(days)
            with self._lock:
                self._own_changes += 1
            return {"message": message}
        raise _bad('`action` must be "reclaim", "digest" or "advance".')

    # -- looking things up --

    def _persona(self, request: dict[str, Any]) -> str:
        user = request.get("user")
        if not isinstance(user, str) or not user:
            raise _bad("Say who is acting: `user` must be a persona's user ID, like U0DEMOEMP.")
        if user not in self._personas:
            known = ", ".join(self._personas)
            raise _unknown(f"{user[:40]!r} is not a demo persona; the personas are {known}.")
        return user

    def _conversations(self, user: str) -> list[JSON]:
        found: list[JSON] = [
            {"id": self._sim.dm_channel(user), "kind": "dm", "name": self._sim.bot_name}
        ]
        found += [
            {"id": cid, "kind": "channel", "name": name}
            for cid, name in self._sim.channels_of(user)
        ]
        for entry in found:
            # Unread counts are the page's to keep (it knows what was shown); none here.
            entry["unread"] = 0
        found.append({"id": "home", "kind": "home", "name": "App Home", "unread": 0})
        return found

    def _conversation_of(self, user: str, channel: str) -> None:
        if not any(c["id"] == channel and c["kind"] != "home" for c in self._conversations(user)):
            raise _unknown(f"{user} has no conversation {channel[:40]!r}.")

    def _source(self, user: str, source: dict[str, Any]) -> Message | View:
        kind = source.get("type")
        if kind == "message":
            channel, ts = _string(source, "channel"), _string(source, "ts")
            self._conversation_of(user, channel)
            message = self._sim.find_message(channel, ts)
            if message is None or message.deleted or message.ephemeral_to not in (None, user):
                raise _unknown(f"There is no message {ts[:40]!r} in {channel[:40]} for {user}.")
            return message
        if kind == "view":
            view_id = _string(source, "view_id")
            view = self._sim.view(view_id)
            if view is None or not view.open or view.user != user:
                raise _unknown(f"{user} has no open view {view_id[:40]!r}.")
            return view
        raise _bad('`source.type` must be "message" or "view".')

    def _open_modal(self, user: str, view_id: str) -> View:
        top = self._sim.open_modal(user)
        if top is None or top.id != view_id:
            raise _unknown(f"{view_id[:40]!r} is not the modal {user} has open.")
        return top


# -- shaping what the page reads --


def _message(m: Message, bot_user: str) -> JSON:
    is_bot = m.user == bot_user
    return {
        "ts": m.ts,
        "channel": m.channel,
        "user": None if is_bot else m.user,
        "bot": is_bot,
        "text": m.text,
        "blocks": m.blocks,
        "ephemeral": m.is_ephemeral,
        "edited": bool(m.history),
        "thread_ts": m.thread_ts,
        "files": [
            {
                "id": f.get("id"),
                "name": f.get("name"),
                "title": f.get("title"),
                "mimetype": f.get("mimetype"),
                "url": f"/demo/files/{f.get('id')}",
            }
            for f in m.files
        ],
    }


def _plain_text(value: object) -> str | None:
    return str(value.get("text", "")) if isinstance(value, dict) else None


def _view(v: View) -> JSON:
    state = v.view.get("state")
    values = state.get("values", {}) if isinstance(state, dict) else {}
    return {
        "id": v.id,
        "type": v.type,
        "title": v.title,
        "submit": _plain_text(v.view.get("submit")),
        "close": _plain_text(v.view.get("close")),
        "blocks": v.blocks,
        "errors": v.errors or {},
        # What the person picked or typed so far (kept across a submission with errors).
        "state": values,
    }


# -- HTTP plumbing --


def _check_host(environ: dict[str, Any]) -> None:
    """Only requests addressed to this machine by name: a web page elsewhere that resolves
    its own domain to 127.0.0.1 (DNS rebinding) must not drive the demo."""
    host = str(environ.get("HTTP_HOST") or "")
    if not host:
        return
    name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name.lower() not in _LOOPBACK:
        raise _bad("The demo answers only requests to 127.0.0.1 or localhost.")


def _query(environ: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_qs(str(environ.get("QUERY_STRING") or ""), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    ctype = str(environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    # JSON only: a browser cannot send it cross-site without asking first (CORS), and the
    # demo never says yes.
    if ctype != "application/json":
        raise _bad("Send the body as JSON (Content-Type: application/json).")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _bad("Content-Length is not a number.") from None
    if length > MAX_BODY:
        raise _bad(f"The body is {length} bytes; at most {MAX_BODY} are accepted.")
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        parsed = json_body.parse(raw or b"{}")
    except ValueError as exc:
        raise _bad(f"The body is not valid JSON ({exc}).") from None
    if not isinstance(parsed, dict):
        raise _bad("The body must be a JSON object.")
    return parsed


def _string(request: dict[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise _bad(f"`{field}` is missing; it must be a non-empty string.")
    return value


def _check_values(values: object) -> None:
    """``{"<block_id>": {"<action_id>": text | option value | user id | [..] | null}}``."""
    problem = _bad(
        "`values` must map block_id to {action_id: value}, each value a string, a list of "
        "strings or null."
    )
    if not isinstance(values, dict):
        raise problem
    for by_action in values.values():
        if not isinstance(by_action, dict):
            raise problem
        for value in by_action.values():
            if value is None or isinstance(value, str):
                continue
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                continue
            raise problem


def _acked(response: httpx.Response) -> None:
    if not 200 <= response.status_code < 300:
        raise _Refused(502, f"The bot answered HTTP {response.status_code}; see the terminal.")


def _lookup_message(exc: LookupError) -> str:
    text = str(exc.args[0]) if exc.args else "Not found."
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _json(start_response: StartResponse, status: int, body: JSON) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [data]

"""A local, stateful stand-in for Slack's Web API, response_url hooks and trigger_ids.

Standard library only, so the product's tests and ``licensebot demo`` can run it anywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import email.policy
import itertools
import json
import math
import mimetypes
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from bot.slacksim.blockkit import (
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    MAX_VIEW_BYTES,
    collect_text,
    validate_blocks,
    validate_view,
)

T = TypeVar("T")
JSONDict = dict[str, Any]

DEFAULT_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "im:write",
    "im:history",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "files:write",
)
TRIGGER_TTL = 3.0
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_USES = 5
MAX_PUSHED_VIEWS = 2
ACK_TIMEOUT = 3.0
# How long a response_url post or views.update waits for the interaction's ack to be applied.
# Short, because an app that posts *before* it acks would otherwise stall its own ack.
ACK_HOLD = 1.0
HOOK_KINDS = ("commands", "actions", "app")
# Where files.getUploadURLExternal sends the bytes (Slack's is files.slack.com/upload/v1/…).
UPLOAD_PATH = "/upload/v1/"
MAX_UPLOAD_BYTES = 1024**3  # 1 GB: slack_sdk refuses bigger files itself
MAX_ALT_TXT = 1000

# Slack checks the token's scopes before running the method (SLACK.md §9).
_NEEDED_SCOPE = {
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "conversations.open": "im:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "usergroups.users.list": "usergroups:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}


@dataclass
class Call:
    """One request the sim received (``method`` is ``"response_url"`` for hook posts) or one
    app response it applied on Slack's side (``method="ack"``, recorded by the sender)."""

    method: str
    args: JSONDict
    response: JSONDict
    status: int
    at: float
    path: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        error = self.response.get("error")
        return error if isinstance(error, str) else None


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[JSONDict]
    ephemeral_to: str | None = None
    thread_ts: str | None = None
    history: list[JSONDict] = field(default_factory=list)
    deleted: bool = False
    via: str = "chat.postMessage"
    bot_id: str | None = None
    attachments: list[JSONDict] = field(default_factory=list)
    files: list[JSONDict] = field(default_factory=list)  # shared by files.completeUploadExternal

    @property
    def is_ephemeral(self) -> bool:
        return self.ephemeral_to is not None

    @property
    def all_text(self) -> str:
        """Fallback text plus every visible string in the blocks, for substring assertions."""
        return "\n".join([self.text, *collect_text(self.blocks), *collect_text(self.attachments)])

    def to_api(self) -> JSONDict:
        """The message object Slack returns from the API and embeds in block_actions."""
        shaped: JSONDict = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.bot_id:
            shaped["bot_id"] = self.bot_id
        if self.blocks:
            shaped["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            shaped["attachments"] = copy.deepcopy(self.attachments)
        if self.files:
            shaped["files"] = copy.deepcopy(self.files)
        if self.thread_ts:
            shaped["thread_ts"] = self.thread_ts
        return shaped


@dataclass
class View:
    id: str
    user: str
    type: str
    view: JSONDict
    hash: str
    open: bool
    stack: int
    """Position in the user's modal stack: 0 is the root (and every Home view), 1-2 pushed."""
    external_id: str | None = None
    errors: dict[str, str] | None = None
    history: list[JSONDict] = field(default_factory=list)

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id") or "")

    @property
    def private_metadata(self) -> str:
        return str(self.view.get("private_metadata") or "")

    @property
    def blocks(self) -> list[JSONDict]:
        blocks = self.view.get("blocks")
        return blocks if isinstance(blocks, list) else []

    @property
    def title(self) -> str:
        title = self.view.get("title")
        return str(title.get("text", "")) if isinstance(title, dict) else ""

    @property
    def all_text(self) -> str:
        return "\n".join(collect_text([self.view.get("title"), self.blocks]))


@dataclass
class SharedFile:
    """A file the app uploaded and shared (or kept private: ``channel`` None)."""

    id: str
    name: str
    title: str
    content: bytes
    channel: str | None
    initial_comment: str | None
    thread_ts: str | None
    message_ts: str | None
    alt_txt: str | None


@dataclass
class _Upload:
    id: str
    filename: str
    length: int
    alt_txt: str | None = None
    content: bytes | None = None  # None until the bytes are POSTed to the upload URL
    title: str = ""
    channel: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None
    completed_seq: int = 0  # order of files.completeUploadExternal; 0: not completed


@dataclass
class _Trigger:
    user: str
    issued: float
    used: bool = False


@dataclass
class _Hook:
    url: str
    user: str
    channel: str
    kind: str
    source_ts: str | None
    issued: float
    uses: int = 0


@dataclass
class _Fault:
    status: int
    retry_after: int
    error: str
    times: int


@dataclass
class _Channel:
    name: str
    members: list[str] | None
    is_private: bool


class _Fail(Exception):
    """A Slack-style error answer; raised inside method handlers."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        extra: JSONDict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> JSONDict:
        return {"ok": False, "error": self.error, **self.extra}


_ApiMethod = Callable[["SlackSim", JSONDict], JSONDict]
_API: dict[str, _ApiMethod] = {}


def _api(name: str) -> Callable[[_ApiMethod], _ApiMethod]:
    def register(fn: _ApiMethod) -> _ApiMethod:
        _API[name] = fn
        return fn

    return register


def _str_arg(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _json_arg(args: Mapping[str, Any], key: str) -> object:
    # Form-encoded clients send nested structures as JSON strings.
    value = args.get(key)
    if isinstance(value, str):
        return json.loads(value) if value.strip() else None
    return value


def _invalid(errors: list[str], error: str) -> _Fail:
    return _Fail(
        error,
        extra={
            "errors": errors,
            "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
        },
    )


class SlackSim:
    """In-process fake Slack. Every public accessor returns snapshots taken under the lock."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "B0001",
        app_id: str = "A0001",
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], float] = time.time,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        team_domain: str = "acme",
        team_name: str = "Acme",
        bot_name: str = "licensebot",
        fast: bool = False,
    ) -> None:
        """``fast`` (benchmarks only): skip Block Kit validation and keep recorded calls
        without copying them, so the sim answers at once; tests keep the default checks."""
        self.fast = fast
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_domain = team_domain
        self.team_name = team_name
        self.bot_name = bot_name
        self.scopes: tuple[str, ...] = tuple(scopes)
        self.now = now
        self.rate_limit_per_channel_per_second: float | None = None
        # Seconds every Web API call takes before it answers (a slow Slack), outside the lock.
        self.latency: float = 0.0
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._acked = threading.Condition(self._lock)
        self._version = 0  # see ``version``
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._last_ts_us = 0
        self._users: dict[str, JSONDict] = {}
        self._channels: dict[str, _Channel] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._clear_state()
        self.add_user(bot_user_id, name=bot_name, is_bot=True)

    def _clear_state(self) -> None:
        self._version += 1
        self._calls: list[Call] = []
        self._messages: list[Message] = []
        self._by_ts: dict[tuple[str, str], Message] = {}
        self._views: dict[str, View] = {}
        self._stacks: dict[str, list[str]] = {}
        self._homes: dict[str, str] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._hooks: dict[str, _Hook] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._post_times: dict[str, list[float]] = {}
        self._opened: set[str] = set()
        self._pending_acks: set[str] = set()
        self._uploads: dict[str, _Upload] = {}  # by file ID
        self._upload_paths: dict[str, str] = {}  # upload URL path -> file ID

    # -- lifecycle --

    def start(self) -> SlackSim:
        with self._lock:
            if self._server is not None:
                raise RuntimeError("SlackSim already started")
            server = _Server((self._host, self._port), self)
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"slacksim:{server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> SlackSim:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        server = self._server
        if server is None:
            raise RuntimeError("SlackSim is not started")
        host = self._host if self._host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"http://{host}:{server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # -- directory --

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
        deleted: bool = False,
        is_bot: bool = False,
        real_name: str | None = None,
        is_admin: bool = False,
    ) -> JSONDict:
        """Add or replace a directory entry; returns the ``users.info`` user object."""
        name = name or user_id.lower()
        profile: JSONDict = {
            "display_name": name,
            "real_name": real_name or name,
        }
        if email is not None:
            profile["email"] = email
        user: JSONDict = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name or name,
            "deleted": deleted,
            "is_bot": is_bot,
            "is_admin": is_admin,
            "updated": int(self.now()),
            "profile": profile,
        }
        with self._lock:
            self._users[user_id] = user
            self._version += 1
        return copy.deepcopy(user)

    def user(self, user_id: str) -> JSONDict | None:
        with self._lock:
            user = self._users.get(user_id)
            return copy.deepcopy(user) if user else None

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        members: Sequence[str] | None = None,
        is_private: bool = False,
    ) -> None:
        """Register a channel. With ``members``, membership is enforced (``not_in_channel``,
        ``user_not_in_channel``); unregistered C/G channels accept everything."""
        with self._lock:
            self._channels[channel_id] = _Channel(
                name=name or channel_id.lower(),
                members=list(members) if members is not None else None,
                is_private=is_private,
            )
            self._version += 1

    def add_usergroup(self, usergroup_id: str, users: Sequence[str]) -> None:
        with self._lock:
            self._usergroups[usergroup_id] = list(users)
            self._version += 1

    def dm_channel(self, user_id: str) -> str:
        return "D" + user_id

    def channels_of(self, user_id: str) -> list[tuple[str, str]]:
        """The registered channels with ``user_id`` among their members, as (id, name) by
        name; channels registered without members (open to all) are not listed."""
        with self._lock:
            found = [
                (cid, c.name)
                for cid, c in self._channels.items()
                if c.members is not None and user_id in c.members
            ]
        return sorted(found, key=lambda entry: (entry[1], entry[0]))

    def channel_name(self, channel_id: str) -> str:
        with self._lock:
            if channel_id.startswith("D"):
                return "directmessage"
            channel = self._channels.get(channel_id)
            return channel.name if channel else channel_id.lower()

    # -- minting interaction credentials --

    def new_trigger_id(self, user: str) -> str:
        with self._lock:
            now = self.now()
            trigger_id = f"{next(self._ids)}.{int(now)}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = _Trigger(user=user, issued=now)
            return trigger_id

    def new_response_url(
        self, *, user: str, channel: str, kind: str = "commands", source_ts: str | None = None
    ) -> str:
        if kind not in HOOK_KINDS:
            raise ValueError(f"kind must be one of {HOOK_KINDS}")
        with self._lock:
            path = f"/{kind}/{self.team_id}/{next(self._ids)}/{secrets.token_urlsafe(18)}"
            url = self.base_url + path
            self._hooks[path] = _Hook(
                url=url,
                user=user,
                channel=channel,
                kind=kind,
                source_ts=source_ts,
                issued=self.now(),
            )
            return url

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (or ``"response_url"``) fail.

        ``error`` defaults to ``ratelimited`` for 429 and ``internal_error`` otherwise; with
        ``status=200`` this injects any Slack error, e.g. ``channel_not_found``."""
        if error is None:
            error = "ratelimited" if status == 429 else "internal_error"
        with self._lock:
            self._faults.setdefault(method, []).append(
                _Fault(status=status, retry_after=retry_after, error=error, times=times)
            )

    def clear_faults(self) -> None:
        """Slack is healthy again: forget every failure still queued by ``fail_next``."""
        with self._lock:
            self._faults.clear()

    # -- inspection --

    @property
    def version(self) -> int:
        """Grows whenever anything the sim holds may have changed (every call, message, view,
        file or directory entry), so a client can poll it and read the state again only then."""
        with self._lock:
            return self._version

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return copy.deepcopy(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if c.method == method]

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return copy.deepcopy(self._messages)

    def messages_in(self, channel: str, *, include_deleted: bool = False) -> list[Message]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._messages
                if m.channel == channel and (include_deleted or not m.deleted)
            ]

    def messages_visible_to(self, user_id: str, channel: str) -> list[Message]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._messages
                if m.channel == channel and not m.deleted and m.ephemeral_to in (None, user_id)
            ]

    def find_message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            message = self._by_ts.get((channel, ts))
            return copy.deepcopy(message) if message else None

    @property
    def views(self) -> list[View]:
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    def view(self, view_id: str) -> View | None:
        with self._lock:
            view = self._views.get(view_id)
            return copy.deepcopy(view) if view else None

    def modal_stack(self, user: str) -> list[View]:
        with self._lock:
            return [copy.deepcopy(self._views[v]) for v in self._stacks.get(user, [])]

    def open_modal(self, user: str) -> View | None:
        stack = self.modal_stack(user)
        return stack[-1] if stack else None

    @property
    def files(self) -> list[SharedFile]:
        """Files shared by files.completeUploadExternal, in the order they were completed."""
        with self._lock:
            return [
                SharedFile(
                    id=u.id,
                    name=u.filename,
                    title=u.title,
                    content=u.content or b"",
                    channel=u.channel,
                    initial_comment=u.initial_comment,
                    thread_ts=u.thread_ts,
                    message_ts=u.message_ts,
                    alt_txt=u.alt_txt,
                )
                for u in sorted(self._uploads.values(), key=lambda u: u.completed_seq)
                if u.completed_seq
            ]

    def home(self, user: str) -> View | None:
        with self._lock:
            view_id = self._homes.get(user)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,
        *,
        interval: float = 0.01,
        what: str | None = None,
    ) -> T:
        """Poll ``predicate`` until it returns something truthy and return that."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        label = what or getattr(predicate, "__qualname__", repr(predicate))
        with self._lock:
            recent = [
                f"{c.method} -> {c.status} {'ok' if c.ok else c.error}" for c in self._calls[-10:]
            ]
        raise TimeoutError(
            f"waited {timeout:.1f}s for {label}; last calls: "
            + ("; ".join(recent) if recent else "none")
        )

    def reset(self) -> None:
        """Forget recordings, messages, views and credentials; keep users and channels."""
        with self._lock:
            self._clear_state()

    def snapshot(self) -> JSONDict:
        """JSON-serialisable dump of the whole state (served at ``GET /_sim/state``)."""
        with self._lock:
            return {
                "team_id": self.team_id,
                "bot_user_id": self.bot_user_id,
                "users": copy.deepcopy(list(self._users.values())),
                "channels": {
                    cid: dataclasses.asdict(c) for cid, c in sorted(self._channels.items())
                },
                "messages": [dataclasses.asdict(m) for m in self._messages],
                "views": [dataclasses.asdict(v) for v in self._views.values()],
                "modal_stacks": copy.deepcopy(self._stacks),
                "homes": dict(self._homes),
                "calls": [dataclasses.asdict(c) for c in self._calls],
            }

    # -- entry points for SlackSender (Slack's side of an interaction) --

    def post_user_message(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """Record a message a human typed (the sender then emits the matching event)."""
        with self._lock:
            message = self._store(
                channel, text, None, None, user=user, thread_ts=thread_ts, via="user"
            )
            return copy.deepcopy(message)

    @contextmanager
    def awaiting_ack(self, key: str) -> Iterator[None]:
        """While the sender waits for the app's HTTP answer, hold posts to this response_url
        (or ``views.update`` of this view id) for up to ``ACK_HOLD`` seconds: Slack applies an
        ack before anything the app sends afterwards, so a fast ``respond(replace_original=True)``
        right after ``ack("Working…")`` must not overtake it."""
        key = urlsplit(key).path or key
        with self._lock:
            self._pending_acks.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._pending_acks.discard(key)
                self._acked.notify_all()

    def _wait_for_ack(self, key: str) -> None:
        deadline = time.monotonic() + ACK_HOLD
        while key in self._pending_acks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._acked.wait(remaining)

    def apply_command_response(
        self, response_url: str, *, status: int, body: bytes, elapsed: float
    ) -> Message | None:
        """Show what the app put in its slash-command HTTP response, as Slack would."""
        with self._lock:
            hook = self._hooks[urlsplit(response_url).path]
            args: JSONDict = {"type": "slash_commands", "status": status}
            message: Message | None = None
            if elapsed > ACK_TIMEOUT:
                response: JSONDict = {"ok": False, "error": "operation_timeout"}
            elif not 200 <= status < 300:
                response = {"ok": False, "error": "dispatch_failed"}
            elif not body.strip():
                response = {"ok": True}
            else:
                payload = _ack_payload(body)
                args["body"] = payload
                if any(payload.get(k) for k in ("text", "blocks", "attachments")):
                    code, text, extra, message = self._deliver(hook, payload, via="ack")
                    response = {"ok": code == 200, **extra}
                    if code != 200:
                        response["error"] = text
                else:
                    response = {"ok": True}
            self._record("ack", args, response, status)
            return copy.deepcopy(message) if message else None

    def apply_view_response(
        self, user: str, view_id: str, *, status: int, body: bytes, elapsed: float
    ) -> None:
        """Apply the app's answer to a view_submission (``response_action`` semantics)."""
        with self._lock:
            args: JSONDict = {"type": "view_submission", "view_id": view_id, "status": status}
            submitted = self._views.get(view_id)
            if submitted is not None:
                # A new submission replaces the errors of the last one (Slack clears them).
                submitted.errors = None
            try:
                response = self._view_response(user, view_id, status, body, elapsed, args)
            except _Fail as fail:
                response = fail.body()
            self._record("ack", args, response, status)

    def set_view_state(self, view_id: str, block_id: str, action_id: str, value: JSONDict) -> None:
        """Remember a value the user picked in an open view, as Slack keeps ``state.values``."""
        with self._lock:
            state = self._views[view_id].view.setdefault("state", {}).setdefault("values", {})
            state.setdefault(block_id, {})[action_id] = copy.deepcopy(value)
            self._version += 1

    def dismiss_view(self, user: str, view_id: str) -> None:
        """The user pressed Close/X on the top modal."""
        with self._lock:
            stack = self._stacks.get(user, [])
            if not stack or stack[-1] != view_id:
                raise LookupError(f"{view_id} is not the top modal of {user}")
            if self._views[view_id].view.get("clear_on_close"):
                self._close_stack(user)
            else:
                self._pop_view(user)
            self._version += 1

    # -- HTTP plumbing --

    def _handle_http(
        self, verb: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path = parts.path
        try:
            if path.startswith("/api/"):
                return self._handle_api(path[len("/api/") :], parts.query, headers, body)
            if verb == "POST" and path.count("/") >= 2 and path.split("/")[1] in HOOK_KINDS:
                return self._handle_hook(path, body)
            if verb == "POST" and path.startswith(UPLOAD_PATH):
                return self._handle_upload(path, headers, body)
            if path == "/_sim/state":
                return _json_response(200, self.snapshot())
            return 404, {"Content-Type": "text/plain"}, b"not_found"
        except Exception:
            # Surface sim bugs to the test instead of a dropped connection.
            detail = traceback.format_exc()
            with self._lock:
                self._record(
                    path, {}, {"ok": False, "error": "sim_internal_error", "detail": detail}, 500
                )
            return _json_response(500, {"ok": False, "error": "internal_error"})

    def _handle_api(
        self, method: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.latency:
            time.sleep(self.latency)
        args: JSONDict = dict(parse_qsl(query, keep_blank_values=True))
        bad_json = False
        if body:
            if "json" in headers.get("content-type", ""):
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict):
                    args.update(parsed)
                else:
                    bad_json = True
            else:
                args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        token = _str_arg(args, "token")
        args.pop("token", None)
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[len("bearer ") :].strip() or token
        out_headers: dict[str, str] = {}
        with self._lock:
            handler = _API.get(method)
            fault = self._take_fault(method) if handler else None
            status = 200
            try:
                if handler is None:
                    raise _Fail("unknown_method", extra={"req_method": method})
                if fault is not None:
                    headers_ = (
                        {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
                    )
                    raise _Fail(fault.error, status=fault.status, headers=headers_)
                if not token:
                    raise _Fail("not_authed")
                if token != self.bot_token:
                    raise _Fail("invalid_auth")
                if bad_json:
                    raise _Fail("invalid_json")
                out_headers["x-oauth-scopes"] = ",".join(self.scopes)
                needed = _NEEDED_SCOPE.get(method)
                if needed and needed not in self.scopes:
                    raise _Fail(
                        "missing_scope", extra={"needed": needed, "provided": ",".join(self.scopes)}
                    )
                response = handler(self, args)
            except _Fail as fail:
                response, status = fail.body(), fail.status
                out_headers.update(fail.headers)
            self._record(method, args, response, status)
        code, base_headers, payload = _json_response(status, response)
        return code, {**base_headers, **out_headers}, payload

    def _handle_hook(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self._wait_for_ack(path)
            hook = self._hooks.get(path)
            fault = self._take_fault("response_url")
            try:
                payload = json.loads(body) if body.strip() else {}
            except ValueError:
                payload = None
            extra: JSONDict = {}
            if fault is not None:
                status, text = fault.status, fault.error
            elif not isinstance(payload, dict):
                status, text, payload = (
                    400,
                    "invalid_payload",
                    {"raw": body.decode("utf-8", "replace")},
                )
            elif hook is None:
                status, text = 404, "no_service"
            elif self.now() - hook.issued > RESPONSE_URL_TTL:
                status, text = 404, "expired_url"
            elif hook.uses >= RESPONSE_URL_USES:
                status, text = 404, "used_url"
            else:
                status, text, extra, _ = self._deliver(hook, payload, via="response_url")
                if status == 200:
                    hook.uses += 1
            response: JSONDict = {"ok": status == 200, **extra}
            if status != 200:
                response["error"] = text
            args = payload if isinstance(payload, dict) else {}
            self._record("response_url", args, response, status, path=path)
        headers = {"Content-Type": "text/html"}
        if fault is not None and fault.status == 429:
            headers["Retry-After"] = str(fault.retry_after)
        return status, headers, text.encode()

    def _record(
        self, method: str, args: JSONDict, response: JSONDict, status: int, *, path: str = ""
    ) -> None:
        self._version += 1
        self._calls.append(
            Call(
                method=method,
                args=args if self.fast else copy.deepcopy(args),
                response=response if self.fast else copy.deepcopy(response),
                status=status,
                at=self.now(),
                path=path,
            )
        )

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    # -- message model --

    def _next_ts(self) -> str:
        micros = max(int(self.now() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _store(
        self,
        channel: str,
        text: str,
        blocks: list[JSONDict] | None,
        attachments: list[JSONDict] | None,
        *,
        user: str | None = None,
        ephemeral_to: str | None = None,
        thread_ts: str | None = None,
        via: str,
    ) -> Message:
        poster = user or self.bot_user_id
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            user=poster,
            text=text,
            blocks=self._render_blocks(blocks or []),
            ephemeral_to=ephemeral_to,
            thread_ts=thread_ts,
            via=via,
            bot_id=self.bot_id if poster == self.bot_user_id else None,
            attachments=copy.deepcopy(attachments or []),
        )
        self._messages.append(message)
        self._by_ts[(channel, message.ts)] = message
        self._version += 1
        return message

    def _edit(
        self,
        message: Message,
        text: str | None,
        blocks: list[JSONDict] | None,
        attachments: list[JSONDict] | None,
        *,
        keep_missing: bool,
    ) -> None:
        self._version += 1
        message.history.append(
            {
                "text": message.text,
                "blocks": copy.deepcopy(message.blocks),
                "attachments": copy.deepcopy(message.attachments),
                "replaced_at": self.now(),
            }
        )
        if text is not None or not keep_missing:
            message.text = text or ""
        if blocks is not None or not keep_missing:
            message.blocks = self._render_blocks(blocks or [])
        if attachments is not None or not keep_missing:
            message.attachments = copy.deepcopy(attachments or [])

    def _render_blocks(self, blocks: list[JSONDict]) -> list[JSONDict]:
        # Slack fills in missing block_id/action_id so interactions can name their source.
        rendered = copy.deepcopy(blocks)
        for block in rendered:
            block.setdefault("block_id", f"sim{next(self._ids)}")
            elements: list[Any] = []
            if block.get("type") == "actions":
                elements = block.get("elements") or []
            elif block.get("type") == "section" and block.get("accessory"):
                elements = [block["accessory"]]
            elif block.get("type") == "input" and block.get("element"):
                elements = [block["element"]]
            for el in elements:
                if isinstance(el, dict) and el.get("type") != "image":
                    el.setdefault("action_id", f"sim-action-{next(self._ids)}")
        return rendered

    def _content(
        self, args: Mapping[str, Any], *, require: bool
    ) -> tuple[str | None, list[JSONDict] | None, list[JSONDict] | None]:
        text = args.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        try:
            blocks = _json_arg(args, "blocks")
        except ValueError:
            raise _Fail("invalid_blocks_format") from None
        if blocks is not None and not isinstance(blocks, list):
            raise _Fail("invalid_blocks_format")
        try:
            attachments = _json_arg(args, "attachments")
        except ValueError:
            raise _Fail("invalid_attachments") from None
        if attachments is not None and not isinstance(attachments, list):
            raise _Fail("invalid_attachments")
        if require and not text and not blocks and not attachments:
            raise _Fail("no_text")
        if text is not None and len(text) > MAX_MESSAGE_TEXT:
            raise _Fail("msg_too_long")
        if blocks and not self.fast:
            errors = validate_blocks(blocks, max_blocks=MAX_MESSAGE_BLOCKS)
            if errors:
                raise _invalid(errors, "invalid_blocks")
        return text, blocks, attachments

    def _resolve_channel(self, raw: str | None, *, allow_user: bool) -> str:
        if not raw:
            raise _Fail("channel_not_found")
        if raw[0] in "UW":
            user = self._users.get(raw)
            if not allow_user or user is None or raw == self.bot_user_id:
                raise _Fail("channel_not_found")
            raw = self.dm_channel(raw)
        if raw[0] == "D":
            user = self._users.get(raw[1:])
            if user is None or raw[1:] == self.bot_user_id:
                raise _Fail("channel_not_found")
            # [unverified] what Slack answers for a DM with a deactivated user.
            if user.get("deleted"):
                raise _Fail("is_archived")
            return raw
        if raw[0] in "CG":
            channel = self._channels.get(raw)
            if channel and channel.members is not None and self.bot_user_id not in channel.members:
                raise _Fail("not_in_channel")
            return raw
        raise _Fail("channel_not_found")

    def _check_rate(self, channel: str) -> None:
        rate = self.rate_limit_per_channel_per_second
        if not rate:
            return
        window = max(1.0, 1.0 / rate)
        limit = max(1, int(rate * window))
        now = self.now()
        recent = [t for t in self._post_times.get(channel, []) if now - t < window]
        if len(recent) >= limit:
            retry = max(1, math.ceil(recent[0] + window - now))
            raise _Fail("ratelimited", status=429, headers={"Retry-After": str(retry)})
        recent.append(now)
        self._post_times[channel] = recent

    def _bot_message(self, channel: str, ts: str | None) -> Message:
        message = self._by_ts.get((channel, ts or ""))
        if message is None or message.deleted or message.ephemeral_to is not None:
            raise _Fail("message_not_found")
        return message

    # -- response_url deliveries --

    def _deliver(
        self, hook: _Hook, payload: Mapping[str, Any], *, via: str
    ) -> tuple[int, str, JSONDict, Message | None]:
        source = self._by_ts.get((hook.channel, hook.source_ts)) if hook.source_ts else None
        if source is not None and source.deleted:
            source = None
        has_content = any(payload.get(k) for k in ("text", "blocks", "attachments"))
        if payload.get("delete_original"):
            if source is None:
                return 404, "message_not_found", {}, None
            source.deleted = True
            if not has_content:
                return 200, "ok", {}, None
            source = None
        try:
            text, blocks, attachments = self._content(payload, require=True)
        except _Fail as fail:
            return 400, fail.error, fail.extra, None
        if payload.get("replace_original") and source is not None:
            self._edit(source, text, blocks, attachments, keep_missing=False)
            return 200, "ok", {}, None
        in_channel = payload.get("response_type") == "in_channel"
        message = self._store(
            hook.channel,
            text or "",
            blocks,
            attachments,
            ephemeral_to=None if in_channel else hook.user,
            thread_ts=_str_arg(payload, "thread_ts"),
            via=via,
        )
        if source is None:
            # With no live original, later replace/delete_original through this hook target
            # this reply (e.g. "Working on it…" then the result).
            hook.source_ts = message.ts
        return 200, "ok", {}, message

    # -- views model --

    def _parse_view(self, args: Mapping[str, Any]) -> JSONDict:
        try:
            view = _json_arg(args, "view")
        except ValueError:
            raise _Fail("invalid_arguments") from None
        if not isinstance(view, dict):
            raise _Fail("invalid_arguments")
        if self.fast:
            return view
        if len(json.dumps(view).encode()) > MAX_VIEW_BYTES:
            raise _Fail("view_too_large")
        errors = validate_view(view)
        if errors:
            raise _invalid(errors, "invalid_arguments")
        return view

    def _take_trigger(self, args: Mapping[str, Any]) -> _Trigger:
        trigger_id = _str_arg(args, "trigger_id")
        if not trigger_id:
            raise _Fail("invalid_arguments")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise _Fail("invalid_trigger_id")
        if trigger.used:
            raise _Fail("exchanged_trigger_id")
        if self.now() - trigger.issued > TRIGGER_TTL:
            raise _Fail("expired_trigger_id")
        return trigger

    def _check_external_id(self, external_id: object, *, except_id: str | None = None) -> None:
        if not external_id:
            return
        for view in self._views.values():
            if view.open and view.external_id == external_id and view.id != except_id:
                raise _Fail("duplicate_external_id")

    def _view_shape(
        self, view_id: str, src: JSONDict, *, root: str, previous: str | None
    ) -> tuple[JSONDict, str]:
        view_hash = f"{int(self.now())}.{secrets.token_urlsafe(6)}"
        shaped: JSONDict = {
            "id": view_id,
            "team_id": self.team_id,
            "type": src["type"],
            "blocks": self._render_blocks(src.get("blocks") or []),
            "private_metadata": src.get("private_metadata", ""),
            "callback_id": src.get("callback_id", ""),
            "state": {"values": {}},
            "hash": view_hash,
            "title": copy.deepcopy(src.get("title")),
            "clear_on_close": bool(src.get("clear_on_close", False)),
            "notify_on_close": bool(src.get("notify_on_close", False)),
            "close": copy.deepcopy(src.get("close")),
            "submit": copy.deepcopy(src.get("submit")),
            "previous_view_id": previous,
            "root_view_id": root,
            "app_id": self.app_id,
            "external_id": src.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        return shaped, view_hash

    def _new_view(
        self, user: str, src: JSONDict, *, stack: int, root: str | None, previous: str | None
    ) -> View:
        view_id = f"V{next(self._ids):08d}"
        shaped, view_hash = self._view_shape(view_id, src, root=root or view_id, previous=previous)
        view = View(
            id=view_id,
            user=user,
            type=src["type"],
            view=shaped,
            hash=view_hash,
            open=True,
            stack=stack,
            external_id=src.get("external_id") or None,
        )
        self._views[view_id] = view
        return view

    def _replace_view(self, view: View, src: JSONDict) -> None:
        view.history.append(copy.deepcopy(view.view))
        shaped, view_hash = self._view_shape(
            view.id,
            src,
            root=view.view["root_view_id"],
            previous=view.view["previous_view_id"],
        )
        view.view, view.hash, view.errors = shaped, view_hash, None
        view.external_id = src.get("external_id") or view.external_id

    def _push_view(self, user: str, src: JSONDict) -> View:
        stack = self._stacks.get(user) or []
        if not stack:
            raise _Fail("not_found")
        if len(stack) > MAX_PUSHED_VIEWS:
            raise _Fail("push_limit_reached")
        view = self._new_view(user, src, stack=len(stack), root=stack[0], previous=stack[-1])
        stack.append(view.id)
        return view

    def _pop_view(self, user: str) -> None:
        stack = self._stacks.get(user) or []
        if stack:
            self._views[stack.pop()].open = False
        if not stack:
            self._stacks.pop(user, None)

    def _close_stack(self, user: str) -> None:
        for view_id in self._stacks.pop(user, []):
            self._views[view_id].open = False

    def _view_response(
        self, user: str, view_id: str, status: int, body: bytes, elapsed: float, args: JSONDict
    ) -> JSONDict:
        stack = self._stacks.get(user) or []
        if not stack or stack[-1] != view_id:
            raise _Fail("view_not_open")
        if elapsed > ACK_TIMEOUT:
            raise _Fail("operation_timeout")
        if not 200 <= status < 300:
            raise _Fail("dispatch_failed")
        if not body.strip():
            self._pop_view(user)
            return {"ok": True, "applied": "close"}
        try:
            payload = json.loads(body)
        except ValueError:
            raise _Fail("invalid_response") from None
        args["body"] = payload
        if not isinstance(payload, dict):
            raise _Fail("invalid_response")
        action = payload.get("response_action")
        if action is None:
            self._pop_view(user)
        elif action == "clear":
            self._close_stack(user)
        elif action == "errors":
            errors = payload.get("errors")
            if not isinstance(errors, dict) or not errors:
                raise _Fail("invalid_response")
            view = self._views[view_id]
            inputs = {b.get("block_id") for b in view.blocks if b.get("type") == "input"}
            unknown = sorted(str(k) for k in errors if k not in inputs)
            if unknown:
                # Slack shows a generic failure when an error names no input block.
                raise _Fail("invalid_response", extra={"unknown_block_ids": unknown})
            view.errors = {str(k): str(v) for k, v in errors.items()}
        elif action in ("update", "push"):
            src = self._parse_view(payload)
            if src.get("type") != "modal":
                raise _Fail("invalid_arguments")
            if action == "update":
                self._replace_view(self._views[view_id], src)
            else:
                self._push_view(user, src)
        else:
            raise _Fail("invalid_response")
        return {"ok": True, "applied": action or "close"}

    # -- Web API methods --

    @_api("api.test")
    def _api_test(self, args: JSONDict) -> JSONDict:
        return {"ok": True, "args": {k: v for k, v in args.items() if isinstance(v, str)}}

    @_api("auth.test")
    def _auth_test(self, args: JSONDict) -> JSONDict:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    @_api("conversations.open")
    def _conversations_open(self, args: JSONDict) -> JSONDict:
        raw = args.get("users")
        if isinstance(raw, list):
            users = [str(u) for u in raw]
        else:
            users = [u.strip() for u in str(raw or "").split(",") if u.strip()]
        if not users:
            channel = _str_arg(args, "channel")
            if channel and channel in self._opened:
                return {"ok": True, "channel": {"id": channel}}
            raise _Fail("users_list_not_supplied")
        if len(users) > 8:
            raise _Fail("too_many_users")
        for user_id in users:
            user = self._users.get(user_id)
            if user is None:
                raise _Fail("user_not_found")
            if user_id == self.bot_user_id or user.get("is_bot"):
                raise _Fail("cannot_dm_bot")
            if user.get("deleted"):
                raise _Fail("user_disabled")
        if len(users) == 1:
            channel = self.dm_channel(users[0])
        else:
            channel = "G" + "".join(sorted(users))
            self._channels.setdefault(
                channel,
                _Channel(
                    name="mpdm-" + "--".join(sorted(users)),
                    members=[*sorted(users), self.bot_user_id],
                    is_private=True,
                ),
            )
        already = channel in self._opened
        self._opened.add(channel)
        response: JSONDict = {"ok": True, "channel": {"id": channel}}
        if already:
            response.update({"no_op": True, "already_open": True})
        return response

    @_api("chat.postMessage")
    def _chat_post_message(self, args: JSONDict) -> JSONDict:
        channel = self._resolve_channel(_str_arg(args, "channel"), allow_user=True)
        self._check_rate(channel)
        text, blocks, attachments = self._content(args, require=True)
        message = self._store(
            channel,
            text or "",
            blocks,
            attachments,
            thread_ts=_str_arg(args, "thread_ts"),
            via="chat.postMessage",
        )
        if channel.startswith("D"):
            self._opened.add(channel)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.to_api()}

    @_api("chat.postEphemeral")
    def _chat_post_ephemeral(self, args: JSONDict) -> JSONDict:
        channel = self._resolve_channel(_str_arg(args, "channel"), allow_user=True)
        user_id = _str_arg(args, "user")
        if not user_id:
            raise _Fail("invalid_arguments")
        user = self._users.get(user_id)
        if user is None or user.get("deleted") or user.get("is_bot"):
            raise _Fail("user_not_in_channel")
        known = self._channels.get(channel)
        if channel.startswith("D") and channel != self.dm_channel(user_id):
            raise _Fail("user_not_in_channel")
        if known and known.members is not None and user_id not in known.members:
            raise _Fail("user_not_in_channel")
        text, blocks, attachments = self._content(args, require=True)
        message = self._store(
            channel,
            text or "",
            blocks,
            attachments,
            ephemeral_to=user_id,
            thread_ts=_str_arg(args, "thread_ts"),
            via="chat.postEphemeral",
        )
        return {"ok": True, "message_ts": message.ts}

    @_api("chat.update")
    def _chat_update(self, args: JSONDict) -> JSONDict:
        channel = self._resolve_channel(_str_arg(args, "channel"), allow_user=False)
        message = self._bot_message(channel, _str_arg(args, "ts"))
        if message.user != self.bot_user_id:
            raise _Fail("cant_update_message")
        text, blocks, attachments = self._content(args, require=True)
        self._edit(message, text, blocks, attachments, keep_missing=True)
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_api(),
        }

    @_api("chat.delete")
    def _chat_delete(self, args: JSONDict) -> JSONDict:
        channel = self._resolve_channel(_str_arg(args, "channel"), allow_user=False)
        message = self._bot_message(channel, _str_arg(args, "ts"))
        if message.user != self.bot_user_id:
            raise _Fail("cant_delete_message")
        message.deleted = True
        return {"ok": True, "channel": channel, "ts": message.ts}

    @_api("views.open")
    def _views_open(self, args: JSONDict) -> JSONDict:
        trigger = self._take_trigger(args)
        src = self._parse_view(args)
        if src.get("type") != "modal":
            raise _Fail("invalid_arguments")
        self._check_external_id(src.get("external_id"))
        # A new root replaces whatever stack the user had open.
        self._close_stack(trigger.user)
        view = self._new_view(trigger.user, src, stack=0, root=None, previous=None)
        self._stacks[trigger.user] = [view.id]
        trigger.used = True
        return {"ok": True, "view": copy.deepcopy(view.view)}

    @_api("views.push")
    def _views_push(self, args: JSONDict) -> JSONDict:
        trigger = self._take_trigger(args)
        src = self._parse_view(args)
        if src.get("type") != "modal":
            raise _Fail("invalid_arguments")
        self._check_external_id(src.get("external_id"))
        view = self._push_view(trigger.user, src)
        trigger.used = True
        return {"ok": True, "view": copy.deepcopy(view.view)}

    @_api("views.update")
    def _views_update(self, args: JSONDict) -> JSONDict:
        view_id, external_id = _str_arg(args, "view_id"), _str_arg(args, "external_id")
        if not view_id and not external_id:
            raise _Fail("invalid_arguments")
        view: View | None = None
        if view_id:
            view = self._views.get(view_id)
        else:
            view = next(
                (v for v in self._views.values() if v.open and v.external_id == external_id),
                None,
            )
        if view is not None:
            self._wait_for_ack(view.id)
        if view is None or not view.open:
            raise _Fail("not_found")
        expected = _str_arg(args, "hash")
        if expected is not None and expected != view.hash:
            raise _Fail("hash_conflict")
        src = self._parse_view(args)
        if src.get("type") != view.type:
            raise _Fail("invalid_arguments")
        self._check_external_id(src.get("external_id"), except_id=view.id)
        self._replace_view(view, src)
        return {"ok": True, "view": copy.deepcopy(view.view)}

    @_api("views.publish")
    def _views_publish(self, args: JSONDict) -> JSONDict:
        user_id = _str_arg(args, "user_id")
        if not user_id:
            raise _Fail("invalid_arguments")
        if user_id not in self._users:
            raise _Fail("user_not_found")
        src = self._parse_view(args)
        if src.get("type") != "home":
            raise _Fail("invalid_arguments")
        existing_id = self._homes.get(user_id)
        expected = _str_arg(args, "hash")
        if existing_id is None:
            if expected is not None:
                raise _Fail("hash_conflict")
            view = self._new_view(user_id, src, stack=0, root=None, previous=None)
            self._homes[user_id] = view.id
        else:
            view = self._views[existing_id]
            if expected is not None and expected != view.hash:
                raise _Fail("hash_conflict")
            self._replace_view(view, src)
        return {"ok": True, "view": copy.deepcopy(view.view)}

    # -- files: the external upload flow (files_upload_v2) --

    @_api("files.getUploadURLExternal")
    def _files_get_upload_url_external(self, args: JSONDict) -> JSONDict:
        filename = _str_arg(args, "filename")
        raw_length = _str_arg(args, "length")
        if not filename or raw_length is None:
            raise _Fail("invalid_arguments")
        try:
            length = int(raw_length)
        except ValueError:
            raise _Fail("invalid_arguments") from None
        if length < 0:
            raise _Fail("invalid_arguments")
        if length > MAX_UPLOAD_BYTES:
            raise _Fail("file_upload_size_restricted")
        alt_txt = _str_arg(args, "alt_txt")
        if alt_txt is not None and len(alt_txt) > MAX_ALT_TXT:
            raise _Fail("alt_txt_too_large")
        file_id = f"F{next(self._ids):010d}"
        path = f"{UPLOAD_PATH}{secrets.token_urlsafe(24)}"
        self._uploads[file_id] = _Upload(
            id=file_id, filename=filename, length=length, alt_txt=alt_txt
        )
        self._upload_paths[path] = file_id
        return {"ok": True, "upload_url": self.base_url + path, "file_id": file_id}

    @_api("files.completeUploadExternal")
    def _files_complete_upload_external(self, args: JSONDict) -> JSONDict:
        try:
            items = _json_arg(args, "files")
        except ValueError:
            raise _Fail("invalid_arguments") from None
        if not isinstance(items, list) or not items:
            raise _Fail("invalid_arguments")
        uploads: list[tuple[_Upload, str | None]] = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise _Fail("invalid_arguments")
            upload = self._uploads.get(item["id"])
            # [unverified] the error for an ID never uploaded to, or completed already (Slack
            # says the method can be called once).
            if upload is None or upload.content is None or upload.completed_seq:
                raise _Fail("file_not_found")
            title = item.get("title")
            uploads.append((upload, str(title) if title is not None else None))
        channel: str | None = None
        if _str_arg(args, "channel_id") or _str_arg(args, "channels"):
            raw = _str_arg(args, "channel_id") or str(args["channels"]).split(",")[0].strip()
            channel = self._resolve_channel(raw, allow_user=True)
            self._check_rate(channel)
        comment = _str_arg(args, "initial_comment")
        thread_ts = _str_arg(args, "thread_ts")
        shaped: list[JSONDict] = []
        for upload, title in uploads:
            upload.title = title or upload.filename
            upload.channel = channel
            upload.initial_comment = comment
            upload.thread_ts = thread_ts
            upload.completed_seq = next(self._ids)
            shaped.append(self._file_object(upload))
        if channel is not None:
            # Sharing posts one message carrying every file (and the comment) in the channel.
            message = self._store(
                channel, comment or "", None, None, thread_ts=thread_ts, via="files"
            )
            message.files = copy.deepcopy(shaped)
            for upload, _ in uploads:
                upload.message_ts = message.ts
        return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shaped]}

    def _file_object(self, upload: _Upload) -> JSONDict:
        mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        return {
            "id": upload.id,
            "created": int(self.now()),
            "timestamp": int(self.now()),
            "name": upload.filename,
            "title": upload.title,
            "mimetype": mimetype,
            "filetype": upload.filename.rsplit(".", 1)[-1].lower()
            if "." in upload.filename
            else "",
            "user": self.bot_user_id,
            "size": len(upload.content or b""),
            "mode": "hosted",
            "is_external": False,
            "is_public": upload.channel is not None and upload.channel[0] == "C",
            "channels": [upload.channel] if upload.channel else [],
        }

    def _handle_upload(
        self, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """The upload URL: raw bytes, or a multipart form with the file in its one file part.
        Slack answers 200 when it took the bytes, anything else is a failure."""
        with self._lock:
            file_id = self._upload_paths.get(path)
            upload = self._uploads.get(file_id or "")
            content = _multipart_file(headers, body)
            if upload is None:
                status, text = 404, "not_found"
            elif upload.completed_seq:
                status, text = 400, "already_completed"  # [unverified] wording
            elif len(content) != upload.length:
                # files.getUploadURLExternal was told another size: refuse rather than
                # store a truncated file. [unverified] Slack's exact answer.
                status, text = 400, f"length_mismatch: expected {upload.length}"
            else:
                upload.content = content
                status, text = 200, f"OK - {len(content)}"
            self._record(
                "upload",
                {"file_id": file_id, "bytes": len(content)},
                {"ok": status == 200, "status": text},
                status,
                path=path,
            )
        return status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode()

    @_api("users.info")
    def _users_info(self, args: JSONDict) -> JSONDict:
        user_id = _str_arg(args, "user")
        if not user_id:
            raise _Fail("invalid_arguments")
        user = self._users.get(user_id)
        if user is None:
            raise _Fail("user_not_found")
        return {"ok": True, "user": self._user_view(user)}

    @_api("users.lookupByEmail")
    def _users_lookup_by_email(self, args: JSONDict) -> JSONDict:
        email = _str_arg(args, "email")
        if not email:
            raise _Fail("invalid_arguments")
        for user in self._users.values():
            if str(user["profile"].get("email", "")).lower() == email.lower():
                return {"ok": True, "user": self._user_view(user)}
        raise _Fail("users_not_found")

    @_api("usergroups.users.list")
    def _usergroups_users_list(self, args: JSONDict) -> JSONDict:
        group = _str_arg(args, "usergroup")
        if not group:
            raise _Fail("invalid_arguments")
        if group not in self._usergroups:
            raise _Fail("no_such_subteam")
        return {"ok": True, "users": list(self._usergroups[group])}

    def _user_view(self, user: JSONDict) -> JSONDict:
        shaped = copy.deepcopy(user)
        if "users:read.email" not in self.scopes:
            shaped["profile"].pop("email", None)
        return shaped


def _multipart_file(headers: Mapping[str, str], body: bytes) -> bytes:
    """The bytes of an upload: the body itself, or the file part of a multipart form."""
    content_type = headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return body
    parsed = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in parsed.iter_parts():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    return b""


def _ack_payload(body: bytes) -> JSONDict:
    # Slack shows a plain-text HTTP body as the message text.
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"text": text}
    return parsed if isinstance(parsed, dict) else {"text": text}


def _json_response(status: int, body: JSONDict) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections must not make stop() wait.
    block_on_close = False

    def __init__(self, address: tuple[str, int], sim: SlackSim) -> None:
        super().__init__(address, _Handler)
        self.sim = sim


class _Handler(BaseHTTPRequestHandler):
    server_version = "SlackSim/1.0"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, payload = server.sim._handle_http(
            self.command, self.path, headers, body
        )
        self.send_response(status)
        for key, value in out_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: tests read ``sim.calls`` instead of access logs."""

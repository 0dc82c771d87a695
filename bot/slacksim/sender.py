"""Slack's side of the conversation: signed HTTP requests to the app, fed from SlackSim state."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.slacksim.blockkit import iter_elements
from bot.slacksim.server import JSONDict, Message, SlackSim, View

_SELECTED_OPTION_TYPES = frozenset({"static_select", "radio_buttons", "overflow"})
_MISSING = object()


class SlackSender:
    """Sends slash commands, interactions and events to the app exactly as Slack signs them.

    ``clock`` stamps ``X-Slack-Request-Timestamp``; it stays real time even when the sim runs a
    fake ``now``, because the app verifies timestamps against its own wall clock.
    """

    def __init__(
        self,
        sim: SlackSim,
        app_url: str,
        signing_secret: str,
        *,
        team_id: str | None = None,
        api_app_id: str | None = None,
        team_domain: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        self.sim = sim
        self.app_url = app_url
        self.signing_secret = signing_secret
        self.team_id = team_id or sim.team_id
        self.api_app_id = api_app_id or sim.app_id
        self.team_domain = team_domain or sim.team_domain
        self.clock = clock
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self._event_ids = itertools.count(1)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SlackSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport --

    def sign(self, body: bytes, timestamp: int, *, secret: str | None = None) -> str:
        key = (secret if secret is not None else self.signing_secret).encode()
        base = f"v0:{timestamp}:".encode() + body
        return "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()

    def raw(
        self,
        body: bytes,
        content_type: str,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Post ``body`` as-is; use ``sign=False``, an old ``timestamp`` or a wrong ``secret``
        to forge requests the app must reject."""
        ts = int(self.clock()) if timestamp is None else timestamp
        out = {"Content-Type": content_type, **(headers or {})}
        if sign:
            out["X-Slack-Request-Timestamp"] = str(ts)
            out["X-Slack-Signature"] = self.sign(body, ts, secret=secret)
        return self._client.post(self.app_url, content=body, headers=out)

    def _form(self, fields: Mapping[str, str]) -> httpx.Response:
        return self.raw(urlencode(fields).encode(), "application/x-www-form-urlencoded")

    def _interaction(self, payload: JSONDict) -> httpx.Response:
        return self._form({"payload": json.dumps(payload)})

    # -- payload pieces --

    def user_object(self, user: str) -> JSONDict:
        known = self.sim.user(user)
        name = str(known["name"]) if known else user
        return {"id": user, "username": name, "name": name, "team_id": self.team_id}

    def _team(self) -> JSONDict:
        return {"id": self.team_id, "domain": self.team_domain}

    def _action_ts(self) -> str:
        return f"{self.clock():.6f}"

    # -- slash commands and shortcuts --

    def slash(
        self, user: str, text: str, *, command: str = "/license", channel: str | None = None
    ) -> httpx.Response:
        """Run a slash command; an immediate message in the app's response is shown the way
        Slack shows it (ephemeral unless ``response_type`` is ``in_channel``)."""
        channel = channel or self.sim.dm_channel(user)
        response_url = self.sim.new_response_url(user=user, channel=channel, kind="commands")
        fields = {
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel,
            "channel_name": self.sim.channel_name(channel),
            "user_id": user,
            "user_name": self.user_object(user)["name"],
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": self.sim.new_trigger_id(user),
        }
        with self.sim.awaiting_ack(response_url):
            response = self._form(fields)
            self.sim.apply_command_response(
                response_url,
                status=response.status_code,
                body=response.content,
                elapsed=response.elapsed.total_seconds(),
            )
        return response

    def shortcut(self, user: str, callback_id: str) -> httpx.Response:
        user_obj = self.user_object(user)
        return self._interaction(
            {
                "type": "shortcut",
                "action_ts": self._action_ts(),
                "team": self._team(),
                "user": {k: user_obj[k] for k in ("id", "username", "team_id")},
                "api_app_id": self.api_app_id,
                "is_enterprise_install": False,
                "enterprise": None,
                "callback_id": callback_id,
                "trigger_id": self.sim.new_trigger_id(user),
            }
        )

    # -- block actions --

    def click(
        self,
        user: str,
        message: Message | View,
        *,
        action_id: str | None = None,
        label: str | None = None,
        value: str | None = None,
        block_id: str | None = None,
    ) -> httpx.Response:
        """Press a button, found by ``action_id`` or exact ``label`` (optionally ``value``
        and ``block_id``)."""
        current = self._current(user, message)
        block_id, button = _find(
            _blocks_of(current),
            {"button"},
            action_id=action_id,
            label=label,
            value=value,
            block_id=block_id,
        )
        action: JSONDict = {
            "type": "button",
            "action_id": button["action_id"],
            "block_id": block_id,
            "text": copy.deepcopy(button.get("text")),
            "action_ts": self._action_ts(),
        }
        for key in ("value", "style"):
            if key in button:
                action[key] = button[key]
        return self._interaction(self._block_actions(user, current, action))

    def select(
        self,
        user: str,
        message_or_view: Message | View,
        action_id: str,
        option_value: str,
        *,
        block_id: str | None = None,
    ) -> httpx.Response:
        """Pick an option of a static_select, radio_buttons or overflow element, or a user
        (``option_value`` is the user ID) of a users_select."""
        current = self._current(user, message_or_view)
        block_id, element = _find(
            _blocks_of(current),
            {*_SELECTED_OPTION_TYPES, "users_select"},
            action_id=action_id,
            block_id=block_id,
        )
        picked: JSONDict
        if element["type"] == "users_select":
            if self.sim.user(option_value) is None:
                raise LookupError(f"{option_value!r} is not a user of this workspace")
            picked = {"selected_user": option_value}
        else:
            picked = {"selected_option": _option(element, option_value)}
        action: JSONDict = {
            "type": element["type"],
            "action_id": action_id,
            "block_id": block_id,
            **picked,
            "action_ts": self._action_ts(),
        }
        if "placeholder" in element:
            action["placeholder"] = copy.deepcopy(element["placeholder"])
        if isinstance(current, View) and element["type"] != "overflow" and block_id:
            state = {"type": element["type"], **picked}
            self.sim.set_view_state(current.id, block_id, action_id, state)
            current = self._current(user, current)
        return self._interaction(self._block_actions(user, current, action))

    def _current(self, user: str, target: Message | View) -> Message | View:
        # Callers may hold a stale snapshot; Slack always renders the latest version.
        if isinstance(target, Message):
            message = self.sim.find_message(target.channel, target.ts)
            if message is None or message.deleted:
                raise LookupError(f"message {target.ts} in {target.channel} no longer exists")
            if message.ephemeral_to not in (None, user):
                raise LookupError(f"{user} cannot see ephemeral message {message.ts}")
            return message
        view = self.sim.view(target.id)
        if view is None or not view.open:
            raise LookupError(f"view {target.id} is not open")
        if view.user != user:
            raise LookupError(f"view {view.id} belongs to {view.user}, not {user}")
        if view.type == "modal":
            top = self.sim.open_modal(user)
            if top is None or top.id != view.id:
                raise LookupError(f"view {view.id} is not the top of {user}'s modal stack")
        return view

    def _block_actions(self, user: str, source: Message | View, action: JSONDict) -> JSONDict:
        payload: JSONDict = {
            "type": "block_actions",
            "user": self.user_object(user),
            "api_app_id": self.api_app_id,
            "trigger_id": self.sim.new_trigger_id(user),
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if isinstance(source, View):
            payload["container"] = {"type": "view", "view_id": source.id}
            payload["view"] = copy.deepcopy(source.view)
        else:
            container: JSONDict = {
                "type": "message",
                "message_ts": source.ts,
                "channel_id": source.channel,
                "is_ephemeral": source.is_ephemeral,
            }
            if source.thread_ts:
                container["thread_ts"] = source.thread_ts
            payload["container"] = container
            payload["channel"] = {
                "id": source.channel,
                "name": self.sim.channel_name(source.channel),
            }
            if not source.is_ephemeral:
                payload["message"] = source.to_api()
            payload["state"] = {"values": {}}
            payload["response_url"] = self.sim.new_response_url(
                user=user, channel=source.channel, kind="actions", source_ts=source.ts
            )
        payload["actions"] = [action]
        return payload

    # -- modals --

    def submit_view(
        self, user: str, view: View, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> httpx.Response:
        """Submit the top modal. ``values`` maps block_id -> action_id -> a plain value (text,
        option value, user id, list for multi-selects); unset inputs keep their initial value.

        Raises like the Slack client refuses to submit: unknown input, empty required input,
        text outside min/max_length."""
        current = self._current(user, view)
        assert isinstance(current, View)
        if current.type != "modal":
            raise LookupError("only modals can be submitted")
        state_values = self._submission_state(current, values or {})
        # What the user typed stays in the modal if the app answers with errors.
        for block_id, by_action in state_values.items():
            for action_id, entry in by_action.items():
                self.sim.set_view_state(current.id, block_id, action_id, entry)
        shaped = copy.deepcopy(current.view)
        shaped["state"] = {"values": state_values}
        payload: JSONDict = {
            "type": "view_submission",
            "team": self._team(),
            "user": self.user_object(user),
            "api_app_id": self.api_app_id,
            "trigger_id": self.sim.new_trigger_id(user),
            "view": shaped,
            "response_urls": self._response_urls(user, current, state_values),
            "is_enterprise_install": False,
            "enterprise": None,
        }
        with self.sim.awaiting_ack(current.id):
            response = self._interaction(payload)
            self.sim.apply_view_response(
                user,
                current.id,
                status=response.status_code,
                body=response.content,
                elapsed=response.elapsed.total_seconds(),
            )
        return response

    def close_view(self, user: str, view: View) -> httpx.Response | None:
        """Press Close on the top modal; Slack tells the app only if ``notify_on_close``."""
        current = self._current(user, view)
        assert isinstance(current, View)
        response = None
        if current.view.get("notify_on_close"):
            response = self._interaction(
                {
                    "type": "view_closed",
                    "team": self._team(),
                    "user": self.user_object(user),
                    "api_app_id": self.api_app_id,
                    "view": copy.deepcopy(current.view),
                    "is_cleared": bool(current.view.get("clear_on_close")),
                    "is_enterprise_install": False,
                    "enterprise": None,
                }
            )
        self.sim.dismiss_view(user, current.id)
        return response

    def _submission_state(
        self, view: View, values: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, JSONDict]]:
        picked = view.view.get("state", {}).get("values", {})
        inputs = {
            (str(b.get("block_id")), str(b["element"].get("action_id"))): b
            for b in view.blocks
            if b.get("type") == "input" and isinstance(b.get("element"), dict)
        }
        for block_id, by_action in values.items():
            for action_id in by_action:
                if (block_id, action_id) not in inputs:
                    raise KeyError(
                        f"no input {block_id}/{action_id} in view {view.id}; "
                        f"inputs: {sorted(inputs)}"
                    )
        state: dict[str, dict[str, JSONDict]] = {}
        for (block_id, action_id), block in inputs.items():
            element = block["element"]
            given = values.get(block_id, {}).get(action_id, _MISSING)
            if given is _MISSING and action_id in picked.get(block_id, {}):
                entry = copy.deepcopy(picked[block_id][action_id])
            else:
                entry = _input_state(
                    element, None if given is _MISSING else given, given is _MISSING
                )
            if not block.get("optional") and _is_empty(entry):
                raise ValueError(f"required input {block_id}/{action_id} is empty")
            state.setdefault(block_id, {})[action_id] = entry
        return state

    def _response_urls(
        self, user: str, view: View, state: Mapping[str, Mapping[str, JSONDict]]
    ) -> list[JSONDict]:
        urls: list[JSONDict] = []
        for block in view.blocks:
            element = block.get("element")
            if block.get("type") != "input" or not isinstance(element, dict):
                continue
            if not element.get("response_url_enabled"):
                continue
            entry = state.get(str(block.get("block_id")), {}).get(str(element.get("action_id")))
            channel = (entry or {}).get("selected_conversation") or (entry or {}).get(
                "selected_channel"
            )
            if channel:
                urls.append(
                    {
                        "block_id": block.get("block_id"),
                        "action_id": element.get("action_id"),
                        "channel_id": channel,
                        "response_url": self.sim.new_response_url(
                            user=user, channel=channel, kind="app"
                        ),
                    }
                )
        return urls

    # -- events --

    def event(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> httpx.Response:
        """Deliver an Events API ``event_callback``; ``retry_num`` adds Slack's retry headers."""
        envelope: JSONDict = {
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._event_ids):08d}{uuid.uuid4().hex[:6].upper()}",
            "event_time": int(self.clock()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.sim.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        headers: dict[str, str] = {}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        return self.raw(json.dumps(envelope).encode(), "application/json", headers=headers)

    def app_home_opened(self, user: str, *, tab: str = "home") -> httpx.Response:
        event: JSONDict = {
            "type": "app_home_opened",
            "user": user,
            "channel": self.sim.dm_channel(user),
            "tab": tab,
            "event_ts": self._action_ts(),
        }
        home = self.sim.home(user)
        if home is not None:
            event["view"] = copy.deepcopy(home.view)
        return self.event(event)

    def message_im(self, user: str, text: str) -> httpx.Response:
        """The user types ``text`` in their DM with the bot (recorded in the sim, then sent)."""
        message = self.sim.post_user_message(self.sim.dm_channel(user), user, text)
        return self.event(
            {
                "type": "message",
                "channel": message.channel,
                "user": user,
                "text": text,
                "ts": message.ts,
                "event_ts": message.ts,
                "channel_type": "im",
                "client_msg_id": str(uuid.uuid4()),
            }
        )

    def user_change(self, user: str) -> httpx.Response:
        """Announce the directory entry as it is now (e.g. after ``add_user(deleted=True)``)."""
        known = self.sim.user(user)
        if known is None:
            raise LookupError(f"{user} is not in the sim's directory")
        now = int(self.clock())
        return self.event(
            {"type": "user_change", "user": known, "cache_ts": now, "event_ts": f"{now}.000100"}
        )

    def url_verification(self, challenge: str) -> httpx.Response:
        body = {"type": "url_verification", "challenge": challenge}
        return self.raw(json.dumps(body).encode(), "application/json")


def _blocks_of(target: Message | View) -> list[JSONDict]:
    return target.blocks


def _describe(block_id: str | None, element: Mapping[str, Any]) -> str:
    text = element.get("text")
    label = text.get("text") if isinstance(text, dict) else None
    return (
        f"{element.get('type')}(action_id={element.get('action_id')!r}, block_id={block_id!r}, "
        f"label={label!r}, value={element.get('value')!r})"
    )


def _find(
    blocks: list[JSONDict],
    types: set[str],
    *,
    action_id: str | None = None,
    label: str | None = None,
    value: str | None = None,
    block_id: str | None = None,
) -> tuple[str, JSONDict]:
    candidates = [(b, e) for b, e in iter_elements(blocks) if e.get("type") in types]
    matches = [
        (b, e)
        for b, e in candidates
        if (action_id is None or e.get("action_id") == action_id)
        and (label is None or (e.get("text") or {}).get("text") == label)
        and (value is None or e.get("value") == value)
        and (block_id is None or b == block_id)
    ]
    wanted = f"action_id={action_id!r} label={label!r} value={value!r}"
    if block_id is not None:
        wanted += f" block_id={block_id!r}"
    available = "; ".join(_describe(b, e) for b, e in candidates) or "none"
    if not matches:
        raise LookupError(f"no {'/'.join(sorted(types))} matching {wanted}; available: {available}")
    if len(matches) > 1:
        raise LookupError(f"{len(matches)} elements match {wanted}; available: {available}")
    block_id, element = matches[0]
    return str(block_id), element


def _all_options(element: Mapping[str, Any]) -> list[JSONDict]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _option(element: Mapping[str, Any], value: str) -> JSONDict:
    for option in _all_options(element):
        if option.get("value") == value:
            return {k: copy.deepcopy(option[k]) for k in ("text", "value") if k in option}
    values = [o.get("value") for o in _all_options(element)]
    raise LookupError(f"{element.get('action_id')!r} has no option {value!r}; options: {values}")


def _input_state(element: Mapping[str, Any], given: Any, use_initial: bool) -> JSONDict:
    """Slack's ``state.values`` entry for one input element."""
    kind = str(element.get("type"))
    entry: JSONDict = {"type": kind}
    if kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
        text = element.get("initial_value") if use_initial else given
        text = None if text in (None, "") else str(text)
        if text is not None and kind == "plain_text_input":
            low, high = element.get("min_length", 0), element.get("max_length", 3000)
            if not low <= len(text) <= high:
                raise ValueError(f"{element.get('action_id')}: length must be {low}..{high}")
        entry["value"] = text
    elif kind in ("static_select", "radio_buttons"):
        if use_initial:
            entry["selected_option"] = copy.deepcopy(element.get("initial_option"))
        else:
            entry["selected_option"] = None if given is None else _option(element, str(given))
    elif kind == "external_select":
        if use_initial:
            entry["selected_option"] = copy.deepcopy(element.get("initial_option"))
        elif isinstance(given, dict) or given is None:
            entry["selected_option"] = given
        else:
            plain = {"type": "plain_text", "text": str(given)}
            entry["selected_option"] = {"text": plain, "value": str(given)}
    elif kind in ("multi_static_select", "checkboxes"):
        if use_initial:
            entry["selected_options"] = copy.deepcopy(element.get("initial_options") or [])
        else:
            entry["selected_options"] = [_option(element, str(v)) for v in (given or [])]
    else:
        key, initial = _SIMPLE_STATE.get(kind, ("value", "initial_value"))
        entry[key] = copy.deepcopy(element.get(initial)) if use_initial else given
        if kind.startswith("multi_") and entry[key] is None:
            entry[key] = []
    return entry


# element type -> (state key, initial-value field)
_SIMPLE_STATE = {
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
    "rich_text_input": ("rich_text_value", "initial_value"),
    "file_input": ("files", "initial_files"),
}


def _is_empty(entry: Mapping[str, Any]) -> bool:
    return all(v in (None, "", []) for k, v in entry.items() if k != "type")

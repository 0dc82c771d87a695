"""Block Kit limits Slack enforces server-side, as pure validators.

Errors read like Slack's own ``invalid_blocks`` messages:
``"must be less than 3001 characters [json-pointer:/blocks/0/text/text]"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_VIEW_BYTES = 250_000

BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)

SELECT_TYPES = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
    }
)
MULTI_SELECT_TYPES = frozenset(f"multi_{t}" for t in SELECT_TYPES)

# Which element types Slack accepts in each container; anything else is rejected.
ACTIONS_ELEMENTS = (
    frozenset(
        {
            "button",
            "checkboxes",
            "datepicker",
            "datetimepicker",
            "overflow",
            "radio_buttons",
            "timepicker",
            "workflow_button",
            "rich_text_input",
        }
    )
    | SELECT_TYPES
    | MULTI_SELECT_TYPES
)
ACCESSORY_ELEMENTS = (
    frozenset(
        {
            "button",
            "checkboxes",
            "datepicker",
            "image",
            "overflow",
            "radio_buttons",
            "timepicker",
            "workflow_button",
        }
    )
    | SELECT_TYPES
    | MULTI_SELECT_TYPES
)
INPUT_ELEMENTS = (
    frozenset(
        {
            "checkboxes",
            "datepicker",
            "datetimepicker",
            "email_text_input",
            "file_input",
            "number_input",
            "plain_text_input",
            "radio_buttons",
            "rich_text_input",
            "timepicker",
            "url_text_input",
        }
    )
    | SELECT_TYPES
    | MULTI_SELECT_TYPES
)
VIEW_TYPES = frozenset({"modal", "home"})

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}$")


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, reason: str) -> None:
        self.errors.append(f"{reason} [json-pointer:{path}]")

    def string(
        self, value: object, path: str, *, max_len: int, required: bool = False, min_len: int = 0
    ) -> None:
        if value is None:
            if required:
                self.err(path, "missing required field")
            return
        if not isinstance(value, str):
            self.err(path, "must be a string")
            return
        if len(value) > max_len:
            self.err(path, f"must be less than {max_len + 1} characters")
        elif len(value) < min_len:
            self.err(path, f"must be more than {min_len - 1} characters")

    def text(
        self,
        obj: object,
        path: str,
        *,
        max_len: int,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        if obj is None:
            if required:
                self.err(path, "missing required field")
            return
        if not isinstance(obj, Mapping):
            self.err(path, "must be a text object")
            return
        kind = obj.get("type")
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if kind not in allowed:
            self.err(f"{path}/type", f"must be one of {', '.join(allowed)}")
        self.string(obj.get("text"), f"{path}/text", max_len=max_len, required=True, min_len=1)

    def ident(self, value: object, path: str) -> None:
        self.string(value, path, max_len=255, min_len=1)

    def confirm(self, obj: object, path: str) -> None:
        if obj is None:
            return
        if not isinstance(obj, Mapping):
            self.err(path, "must be an object")
            return
        self.text(obj.get("title"), f"{path}/title", max_len=100, plain_only=True)
        self.text(obj.get("text"), f"{path}/text", max_len=300)
        self.text(obj.get("confirm"), f"{path}/confirm", max_len=30, plain_only=True)
        self.text(obj.get("deny"), f"{path}/deny", max_len=30, plain_only=True)
        style = obj.get("style")
        if style is not None and style not in ("primary", "danger"):
            self.err(f"{path}/style", "must be one of primary, danger")

    def option(self, obj: object, path: str, *, allow_mrkdwn: bool, allow_url: bool) -> None:
        if not isinstance(obj, Mapping):
            self.err(path, "must be an option object")
            return
        self.text(obj.get("text"), f"{path}/text", max_len=75, plain_only=not allow_mrkdwn)
        self.string(obj.get("value"), f"{path}/value", max_len=150, required=True, min_len=1)
        self.text(obj.get("description"), f"{path}/description", max_len=75, required=False)
        if "url" in obj:
            if allow_url:
                self.string(obj.get("url"), f"{path}/url", max_len=3000)
            else:
                self.err(f"{path}/url", "not allowed here")

    def options(
        self,
        opts: object,
        path: str,
        *,
        max_items: int,
        allow_mrkdwn: bool = False,
        allow_url: bool = False,
        required: bool = True,
    ) -> None:
        if opts is None:
            if required:
                self.err(path, "missing required field")
            return
        if not isinstance(opts, list):
            self.err(path, "must be an array")
            return
        if len(opts) > max_items:
            self.err(path, f"must provide no more than {max_items} items")
        if required and not opts:
            self.err(path, "must provide at least 1 item")
        for i, opt in enumerate(opts):
            self.option(opt, f"{path}/{i}", allow_mrkdwn=allow_mrkdwn, allow_url=allow_url)

    def element(self, el: object, path: str, *, allowed: frozenset[str]) -> None:
        if not isinstance(el, Mapping):
            self.err(path, "must be an element object")
            return
        kind = el.get("type")
        if kind not in allowed:
            self.err(f"{path}/type", f"unsupported element type {kind!r} here")
            return
        if "action_id" in el:
            self.ident(el.get("action_id"), f"{path}/action_id")
        self.confirm(el.get("confirm"), f"{path}/confirm")
        if "placeholder" in el:
            self.text(el.get("placeholder"), f"{path}/placeholder", max_len=150, plain_only=True)
        if kind == "button":
            self.text(el.get("text"), f"{path}/text", max_len=75, plain_only=True)
            self.string(el.get("value"), f"{path}/value", max_len=2000)
            self.string(el.get("url"), f"{path}/url", max_len=3000)
            self.string(el.get("accessibility_label"), f"{path}/accessibility_label", max_len=75)
            style = el.get("style")
            if style is not None and style not in ("primary", "danger"):
                self.err(f"{path}/style", "must be one of primary, danger")
        elif kind in ("static_select", "multi_static_select"):
            self._static_select(el, path)
        elif kind == "overflow":
            self.options(el.get("options"), f"{path}/options", max_items=5, allow_url=True)
        elif kind in ("checkboxes", "radio_buttons"):
            self.options(el.get("options"), f"{path}/options", max_items=10, allow_mrkdwn=True)
        elif kind == "datepicker":
            date = el.get("initial_date")
            if date is not None and not (isinstance(date, str) and _DATE.match(date)):
                self.err(f"{path}/initial_date", "must be a date YYYY-MM-DD")
        elif kind == "timepicker":
            at = el.get("initial_time")
            if at is not None and not (isinstance(at, str) and _TIME.match(at)):
                self.err(f"{path}/initial_time", "must be a time HH:mm")
        elif kind == "plain_text_input":
            self._text_input(el, path)
        elif kind == "image":
            self._image(el, path)
        elif kind == "number_input" and not isinstance(el.get("is_decimal_allowed"), bool):
            self.err(f"{path}/is_decimal_allowed", "missing required field")
        if kind in MULTI_SELECT_TYPES:
            most = el.get("max_selected_items")
            if most is not None and (not isinstance(most, int) or most < 1):
                self.err(f"{path}/max_selected_items", "must be at least 1")

    def _static_select(self, el: Mapping[str, Any], path: str) -> None:
        has_opts, has_groups = "options" in el, "option_groups" in el
        if has_opts == has_groups:
            self.err(path, "must provide exactly one of options, option_groups")
        if has_opts:
            self.options(el.get("options"), f"{path}/options", max_items=100)
        if has_groups:
            groups = el.get("option_groups")
            if not isinstance(groups, list):
                self.err(f"{path}/option_groups", "must be an array")
                return
            if len(groups) > 100:
                self.err(f"{path}/option_groups", "must provide no more than 100 items")
            for i, group in enumerate(groups):
                gpath = f"{path}/option_groups/{i}"
                if not isinstance(group, Mapping):
                    self.err(gpath, "must be an option group object")
                    continue
                self.text(group.get("label"), f"{gpath}/label", max_len=75, plain_only=True)
                self.options(group.get("options"), f"{gpath}/options", max_items=100)
        if "initial_option" in el:
            self.option(
                el.get("initial_option"),
                f"{path}/initial_option",
                allow_mrkdwn=False,
                allow_url=False,
            )

    def _text_input(self, el: Mapping[str, Any], path: str) -> None:
        self.string(el.get("initial_value"), f"{path}/initial_value", max_len=3000)
        for key, low in (("min_length", 0), ("max_length", 1)):
            bound = el.get(key)
            if bound is not None and not (isinstance(bound, int) and low <= bound <= 3000):
                self.err(f"{path}/{key}", f"must be between {low} and 3000")

    def _image(self, obj: Mapping[str, Any], path: str) -> None:
        if "slack_file" not in obj:
            self.string(obj.get("image_url"), f"{path}/image_url", max_len=3000, required=True)
        self.string(obj.get("alt_text"), f"{path}/alt_text", max_len=2000, required=True)

    def block(self, block: object, path: str, block_ids: set[str]) -> None:
        if not isinstance(block, Mapping):
            self.err(path, "must be a block object")
            return
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            self.err(f"{path}/type", f"unsupported block type {kind!r}")
            return
        if "block_id" in block:
            block_id = block.get("block_id")
            self.ident(block_id, f"{path}/block_id")
            if isinstance(block_id, str):
                if block_id in block_ids:
                    self.err(f"{path}/block_id", f"duplicate block_id {block_id!r}")
                block_ids.add(block_id)
        if kind == "section":
            self._section(block, path)
        elif kind == "header":
            self.text(block.get("text"), f"{path}/text", max_len=150, plain_only=True)
        elif kind == "context":
            self._context(block, path)
        elif kind == "actions":
            self._actions(block, path)
        elif kind == "input":
            self.text(block.get("label"), f"{path}/label", max_len=2000, plain_only=True)
            self.text(
                block.get("hint"), f"{path}/hint", max_len=2000, plain_only=True, required=False
            )
            if block.get("element") is None:
                self.err(f"{path}/element", "missing required field")
            else:
                self.element(block.get("element"), f"{path}/element", allowed=INPUT_ELEMENTS)
        elif kind == "image":
            self._image(block, path)
            self.text(
                block.get("title"), f"{path}/title", max_len=2000, plain_only=True, required=False
            )
        elif kind == "markdown":
            self.string(block.get("text"), f"{path}/text", max_len=12000, required=True)
        elif kind == "rich_text" and not isinstance(block.get("elements"), list):
            self.err(f"{path}/elements", "must be an array")

    def _section(self, block: Mapping[str, Any], path: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self.err(path, "must provide text or fields")
        self.text(text, f"{path}/text", max_len=3000, required=False)
        if fields is not None:
            if not isinstance(fields, list):
                self.err(f"{path}/fields", "must be an array")
            else:
                if len(fields) > 10:
                    self.err(f"{path}/fields", "must provide no more than 10 items")
                for i, field in enumerate(fields):
                    self.text(field, f"{path}/fields/{i}", max_len=2000)
        if block.get("accessory") is not None:
            self.element(block.get("accessory"), f"{path}/accessory", allowed=ACCESSORY_ELEMENTS)

    def _context(self, block: Mapping[str, Any], path: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.err(f"{path}/elements", "must provide at least 1 item")
            return
        if len(elements) > 10:
            self.err(f"{path}/elements", "must provide no more than 10 items")
        for i, el in enumerate(elements):
            epath = f"{path}/elements/{i}"
            if isinstance(el, Mapping) and el.get("type") == "image":
                self._image(el, epath)
            else:
                self.text(el, epath, max_len=3000)

    def _actions(self, block: Mapping[str, Any], path: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.err(f"{path}/elements", "must provide at least 1 item")
            return
        if len(elements) > 25:
            self.err(f"{path}/elements", "must provide no more than 25 items")
        seen: set[str] = set()
        for i, el in enumerate(elements):
            self.element(el, f"{path}/elements/{i}", allowed=ACTIONS_ELEMENTS)
            action_id = el.get("action_id") if isinstance(el, Mapping) else None
            if isinstance(action_id, str):
                if action_id in seen:
                    self.err(f"{path}/elements/{i}/action_id", f"duplicate action_id {action_id!r}")
                seen.add(action_id)

    def blocks(self, blocks: object, path: str, *, max_blocks: int) -> None:
        if not isinstance(blocks, list):
            self.err(path, "must be an array")
            return
        if len(blocks) > max_blocks:
            self.err(path, f"no more than {max_blocks} items allowed")
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            self.block(block, f"{path}/{i}", block_ids)


def validate_blocks(blocks: object, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Return Slack-style errors for a ``blocks`` array; empty means Slack would accept it."""
    checker = _Checker()
    checker.blocks(blocks, "/blocks", max_blocks=max_blocks)
    return checker.errors


def validate_view(view: object) -> list[str]:
    """Return Slack-style errors for a modal or Home view payload (size is checked separately)."""
    checker = _Checker()
    if not isinstance(view, Mapping):
        checker.err("/view", "must be an object")
        return checker.errors
    kind = view.get("type")
    if kind not in VIEW_TYPES:
        checker.err("/view/type", "must be one of modal, home")
    if kind == "modal":
        checker.text(view.get("title"), "/view/title", max_len=24, plain_only=True)
    for key in ("submit", "close"):
        checker.text(view.get(key), f"/view/{key}", max_len=24, plain_only=True, required=False)
    checker.string(view.get("private_metadata"), "/view/private_metadata", max_len=3000)
    checker.string(view.get("callback_id"), "/view/callback_id", max_len=255)
    checker.string(view.get("external_id"), "/view/external_id", max_len=255)
    blocks = view.get("blocks")
    if blocks is None:
        checker.err("/view/blocks", "missing required field")
    else:
        checker.blocks(blocks, "/view/blocks", max_blocks=MAX_VIEW_BLOCKS)
    if kind == "modal" and view.get("submit") is None and _has_input(blocks):
        checker.err("/view/submit", "required when an input block is within the blocks array")
    return checker.errors


def iter_elements(blocks: object) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """Yield ``(block_id, element)`` for every interactive element a user could operate."""
    if not isinstance(blocks, list):
        return
    for block in blocks:
        if not isinstance(block, dict):
            continue
        block_id = block.get("block_id")
        candidates: list[object] = []
        if block.get("type") == "actions" and isinstance(block.get("elements"), list):
            candidates = list(block["elements"])
        elif block.get("type") == "section":
            candidates = [block.get("accessory")]
        elif block.get("type") == "input":
            candidates = [block.get("element")]
        for el in candidates:
            if isinstance(el, dict) and el.get("type") != "image":
                yield block_id, el


def collect_text(node: object) -> list[str]:
    """Every human-visible string in blocks or a view, in document order."""
    found: list[str] = []
    if isinstance(node, list):
        for item in node:
            found.extend(collect_text(item))
    elif isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn", "markdown", "text") and isinstance(
            node.get("text"), str
        ):
            found.append(node["text"])
        for key, value in node.items():
            if key != "text" or not isinstance(value, str):
                found.extend(collect_text(value))
    return found


def _has_input(blocks: object) -> bool:
    return isinstance(blocks, Sequence) and any(
        isinstance(b, Mapping) and b.get("type") == "input" for b in blocks
    )

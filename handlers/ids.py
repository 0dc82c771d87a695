"""Every Slack command, callback, action and block ID the bot uses; manifest.yml agrees (tested)."""

from __future__ import annotations

COMMAND = "/license"

# Global shortcut "Request a license" (manifest: features.shortcuts[].callback_id).
SHORTCUT_REQUEST = "request_license"

# Modals (view callback_id).
VIEW_REQUEST = "request_license_modal"
VIEW_DENY = "deny_reason_modal"
VIEW_REVEAL = "reveal_key_modal"

# Buttons (action_id). Labels are part of the contract: "Approve", "Deny", "Reveal key".
ACTION_APPROVE = "approve_request"
ACTION_DENY = "deny_request"
ACTION_REVEAL = "reveal_key"
# Reclaim nudge buttons, value = assignment ID. Labels are part of the contract: "Keep", "Release".
ACTION_KEEP = "keep_seat"
ACTION_RELEASE = "release_seat"
# Expiry warning button, value = assignment ID. Label is part of the contract: "Request extension".
ACTION_EXTEND = "extend_seat"
# Access review card buttons, value = "<review_id>:<assignment_id>". Labels "Keep" and "Revoke";
# distinct from the reclaim nudge's Keep (keep_seat), which only a seat's holder may press.
ACTION_REVIEW_KEEP = "review_keep"
ACTION_REVIEW_REVOKE = "review_revoke"

# Input blocks of the request modal and the deny modal (block_id / action_id).
BLOCK_PRODUCT = "product"
INPUT_PRODUCT = "product_select"
BLOCK_JUSTIFICATION = "justification"
INPUT_JUSTIFICATION = "justification_input"
BLOCK_REASON = "reason"
INPUT_REASON = "reason_input"

# Events the bot subscribes to (manifest: settings.event_subscriptions.bot_events).
EVENTS = ("app_home_opened", "user_change")

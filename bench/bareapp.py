"""The ack ceiling: ``python -m bench.bareapp --port N`` serves a Bolt app that only acks.

Real signature checks (SLACK_SIGNING_SECRET) and ``process_before_response=True``, behind the
same WSGI server as the bot (waitress, ``bot.server.THREADS`` threads): what is left of the
bot's latency over this one is the bot's own work.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
from collections.abc import Iterable
from types import FrameType
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.authorization import AuthorizeResult
from waitress.server import create_server

from bot.server import THREADS


def _authorize(**_kwargs: Any) -> AuthorizeResult:
    return AuthorizeResult(
        enterprise_id=None,
        team_id="T0001",
        bot_token="xoxb-bench-bare",
        bot_user_id="UBOT",
        bot_id="B0001",
    )


def build() -> SlackRequestHandler:
    app = App(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        # No Slack to ask: a fixed answer stands for the bot's auth.test, which Bolt makes once
        # at start-up and caches (the bot's authorization costs nothing per request either).
        authorize=_authorize,
        request_verification_enabled=True,
        process_before_response=True,
    )

    def just_ack(ack: Ack) -> None:
        ack()

    app.command("/license")(just_ack)
    # Bolt matches no block action on type alone (it 404s): any action_id.
    app.action({"type": "block_actions", "action_id": re.compile(".*")})(just_ack)
    app.event("app_home_opened")(just_ack)
    return SlackRequestHandler(app)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bareapp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    handler = build()

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"ok":true}']
        return handler(environ, start_response)

    server = create_server(application, host=args.host, port=args.port, threads=THREADS)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        server.close()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    server.run()


if __name__ == "__main__":
    main()

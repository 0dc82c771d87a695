"""The production HTTP server: waitress (threaded WSGI) in front of the Bolt app."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from bot.app import Licensebot, assemble
from bot.runtime import build_runtime
from bot.settings import Settings

log = logging.getLogger("licensebot.server")

THREADS = 16


class BotServer:
    """Runs an assembled bot on a port; tests and the demo start it in a thread."""

    def __init__(self, bot: Licensebot, *, host: str = "127.0.0.1", port: int = 3000) -> None:
        self.bot = bot
        self._server = create_server(
            bot.wsgi, host=host, port=port, threads=THREADS, ident="licensebot"
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # The loop's socket map: run() drives it itself so that stopping closes sockets cleanly.
        self._map: dict[int, Any] = self._server._map  # type: ignore[union-attr]  # not in stubs

    @property
    def url(self) -> str:
        host, port = self._server.getsockname()[:2]  # type: ignore[union-attr]  # TCP server
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="http", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Serve until ``close_listener``; the socket is closed by this thread, not another."""
        self.bot.dispatcher.start()
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=0.2, map=self._map, use_poll=True, count=1)
        finally:
            # Keep-alive connections are channels in the map too: close them with the listener.
            wasyncore.close_all(self._map)
            self._server.task_dispatcher.shutdown()
            self.bot.dispatcher.stop()

    def close_listener(self) -> None:
        """Stop accepting requests; ``run`` then returns."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout=10)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 3000) -> None:
    """``licensebot serve``: checks the settings, migrates, and serves until stopped."""
    token, secret = settings.require_slack()
    configure_logging()
    rt = build_runtime(settings)
    try:
        bot = assemble(rt, token=token, signing_secret=secret, api_url=settings.slack_api_url)
        server = BotServer(bot, host=host, port=port)

        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("event=stopping signal=%s", signum)
            server.close_listener()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        log.info("event=serving url=%s", server.url)
        print(f"licensebot: serving on {server.url} (POST /slack/events, GET /healthz)", flush=True)
        server.run()
    finally:
        rt.db.dispose()

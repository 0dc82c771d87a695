"""The production HTTP server: waitress (threaded WSGI) in front of the Bolt app."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from bot.app import Licensebot, WSGIApp, assemble
from bot.runtime import build_runtime
from bot.scheduler import Scheduler
from bot.settings import Role, Settings

log = logging.getLogger("licensebot.server")

THREADS = 16
# How long shutdown waits for in-flight requests, then for queued notifications.
GRACE_SECONDS = 20.0


class BotServer:
    """Runs an assembled bot on a port; tests and the demo start it in a thread."""

    def __init__(
        self,
        bot: Licensebot,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        deliver: bool = True,
        wsgi: WSGIApp | None = None,
    ) -> None:
        """``deliver``: run the outbox dispatcher in this process (False for ``--role web``).
        ``wsgi``: the app to serve instead of ``bot.wsgi`` (the demo puts its pages in front)."""
        self.bot = bot
        self._deliver = deliver
        self._server = create_server(
            wsgi or bot.wsgi, host=host, port=port, threads=THREADS, ident="licensebot"
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
        """Serve until ``close_listener``, then drain: no new connections, in-flight requests
        answered, queued notifications delivered (within ``GRACE_SECONDS``)."""
        if self._deliver:
            self.bot.dispatcher.start()
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=0.2, map=self._map, use_poll=True, count=1)
            self._drain_requests(time.monotonic() + GRACE_SECONDS)
        finally:
            # Keep-alive connections are channels in the map too: close them with the listener.
            wasyncore.close_all(self._map)
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
            if self._deliver:
                self.bot.dispatcher.stop(drain_until=time.monotonic() + GRACE_SECONDS)
            self.bot.close()

    def _drain_requests(self, deadline: float) -> None:
        # The listening socket goes first (new connections are refused); the loop keeps
        # running so that responses of requests already in the worker threads get written.
        self._server.close()
        tasks = self._server.task_dispatcher
        while time.monotonic() < deadline:
            busy = (
                tasks.active_count
                or tasks.queue
                or any(
                    getattr(ch, "requests", None) or getattr(ch, "total_outbufs_len", 0)
                    for ch in list(self._map.values())
                )
            )
            if not busy:
                return
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        log.warning("event=shutdown_grace_expired")

    def close_listener(self) -> None:
        """Stop accepting requests; ``run`` then returns."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout=10)


def configure_logging(level: int = logging.INFO) -> None:
    """One log line per event, ``key=value`` after the logger's name, on stderr."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )


def serve(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 3000, role: Role = "all"
) -> None:
    """``licensebot serve``: checks the settings, migrates, and serves until stopped."""
    background = role == "all"
    token, secret = settings.require_slack()
    configure_logging()
    rt = build_runtime(settings)
    try:
        bot = assemble(
            rt,
            token=token,
            signing_secret=secret,
            api_url=settings.slack_api_url,
            api_token=settings.api_token,
            dispatch_workers=settings.licensebot_dispatch_workers,
        )
        server = BotServer(bot, host=host, port=port, deliver=background)
        jobs = Scheduler(rt)
        if background:
            jobs.start()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("event=stopping signal=%s", signum)
            server.close_listener()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        log.info("event=serving url=%s role=%s", server.url, role)
        print(
            f"licensebot: serving on {server.url} (POST /slack/events, GET /healthz; role {role})",
            flush=True,
        )
        try:
            server.run()
        finally:
            if background:
                jobs.stop()
    finally:
        rt.db.dispose()

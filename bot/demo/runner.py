"""``licensebot demo``: the real bot and a local Slack in one process, with a page to drive them.

The bot is built exactly as ``licensebot serve`` builds it (``build_runtime``, ``assemble``,
``BotServer``; SQLite and key files in the data folder); only Slack is local (``SlackSim`` on
its own loopback port, ``SlackSender`` playing Slack's servers) and the clock can be moved
forward. No scheduler runs: its timers follow wall time, not the demo clock, so the page's
controls run the same job functions instead (``bot.demo.controls``).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import socket
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from types import FrameType, TracebackType

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.app import Licensebot, assemble
from bot.clock import Clock
from bot.demo import DEFAULT_DIR, DEFAULT_PORT, seed
from bot.demo.controls import Controls, load_clock
from bot.demo.web import DemoWeb
from bot.errors import ConfigError
from bot.runtime import Runtime, build_runtime
from bot.server import BotServer, configure_logging
from bot.settings import Settings
from bot.slacksim import SlackSender, SlackSim
from storage import audit, vault

# The local Slack's bot token: it never leaves this process and its loopback ports.
DEMO_TOKEN = "xoxb-licensebot-demo-local-only"
HOST = "127.0.0.1"  # loopback only: the demo API plays Slack for anyone who can reach it
DATABASE_FILE = "licensebot.db"


class DemoSettings(Settings):
    """Only what the demo passes in: the environment and ``.env`` (a real deployment's
    DATABASE_URL, tokens or keys) must never reach the demo, nor the demo's data theirs."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(data_dir: Path, api_url: str, signing_secret: str) -> Settings:
    return DemoSettings(
        database_url=f"sqlite:///{data_dir / DATABASE_FILE}",
        slack_bot_token=DEMO_TOKEN,
        slack_signing_secret=signing_secret,
        slack_api_url=api_url,
        licensebot_it_channel=seed.IT_CHANNEL,
    )


class DemoRunner:
    """Builds and runs the demo; ``start``/``stop`` serve it in a thread (tests), ``serve``
    in the calling thread (the CLI)."""

    def __init__(
        self, data_dir: Path, *, port: int = DEFAULT_PORT, poll_seconds: float = 0.25
    ) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.port = port
        self.poll_seconds = poll_seconds
        self.seeded = False  # whether this start loaded the sample company
        self._sim: SlackSim | None = None
        self._rt: Runtime | None = None
        self._bot: Licensebot | None = None
        self._sender: SlackSender | None = None
        self._server: BotServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def open(self) -> DemoRunner:
        """Build everything and bind the port; nothing is served until ``serve``/``start``."""
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        _check_port(self.port)
        _prepare(self.data_dir)
        clock = load_clock(self.data_dir)
        signing_secret = secrets.token_hex(32)  # in memory only: a new one every start
        self._sim = sim = SlackSim(
            bot_token=DEMO_TOKEN,
            bot_user_id=seed.BOT_USER,
            team_name="Acme (demo)",
            team_domain="acme-demo",
            # Messages are stamped on the demo clock, so "Advance clock" dates them as it
            # would; trigger IDs and response URLs expire on it too, as they would in Slack.
            now=lambda: clock.now().timestamp(),
        )
        seed.add_to_slack(sim)
        sim.start()
        settings = demo_settings(self.data_dir, sim.api_url, signing_secret)
        _quietly_create_key_files(settings)
        self.seeded = not (self.data_dir / DATABASE_FILE).exists()
        if self.seeded:
            _seed_into_place(self.data_dir, settings, clock)
        self._rt = rt = build_runtime(settings, clock=clock)
        self._bot = bot = assemble(
            rt,
            token=DEMO_TOKEN,
            signing_secret=signing_secret,
            api_url=sim.api_url,
            poll_seconds=self.poll_seconds,
        )
        # The bot's URL is known once the server has bound its port (just below).
        self._sender = sender = SlackSender(sim, "", signing_secret)
        web = DemoWeb(
            sim=sim,
            sender=sender,
            controls=Controls(rt, clock, self.data_dir),
            clock=clock,
            bot_app=bot.wsgi,
        )
        try:
            self._server = BotServer(bot, host=HOST, port=self.port, wsgi=web)
        except OSError as exc:
            raise ConfigError(_bind_problem(self.port, exc)) from None
        sender.app_url = f"{self._server.url}/slack/events"

    def serve(self) -> None:
        """Serve until ``request_stop`` (or a signal handler calling it); then close."""
        if self._server is None:
            self.open()
        assert self._server is not None
        try:
            self._server.run()
        finally:
            # run() drained the requests and the outbox, and closed the bot's clients.
            self._server, self._bot = None, None
            self.close()

    def start(self) -> DemoRunner:
        self.open()
        self._thread = threading.Thread(target=self.serve, name="licensebot-demo", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        if self._server is not None:
            self._server.close_listener()

    def stop(self) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        else:
            self.close()

    def close(self) -> None:
        """Release what ``open`` built, last first (safe to call twice)."""
        server, self._server = self._server, None
        if server is not None:
            # Bound but never served: run() with the listener already closed only drains and
            # releases (the listening socket, the dispatcher, the bot's clients).
            server.close_listener()
            server.run()
            self._bot = None
        if self._bot is not None:
            self._bot.close()
            self._bot = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._sim is not None:
            self._sim.stop()
            self._sim = None
        if self._rt is not None:
            self._rt.db.dispose()
            self._rt = None

    def __enter__(self) -> DemoRunner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests and the CLI read --

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the demo is not running")
        return self._server.url

    @property
    def sim(self) -> SlackSim:
        if self._sim is None:
            raise RuntimeError("the demo is not running")
        return self._sim

    @property
    def runtime(self) -> Runtime:
        if self._rt is None:
            raise RuntimeError("the demo is not running")
        return self._rt


def _check_port(port: int) -> None:
    """Refuse a busy port before making or migrating anything. BotServer binding the port
    later is what counts (this is only the early, common case), so its error reads the same."""
    if port == 0:
        return
    with socket.socket() as probe:
        # As waitress binds: a port in TIME_WAIT from a demo just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise ConfigError(_bind_problem(port, exc)) from None


def _prepare(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"{data_dir} is a file; give --data a folder for the demo's data.")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the demo's data folder {data_dir} ({exc.strerror or exc})."
        ) from None


def _quietly_create_key_files(settings: Settings) -> None:
    """The encryption and audit key files beside the demo database, made here so that the
    first start does not print serve's "back up this key" warnings for made-up data."""
    vault.load_or_create_key_file(settings.key_file())
    audit.load_or_create_key_file(settings.audit_key_file())


def _seed_into_place(data_dir: Path, settings: Settings, clock: Clock) -> None:
    """Load the sample company into a database file of its own and rename it into place once
    complete: a first start cut short (Ctrl-C, a crash) leaves no half company behind, and the
    next start begins again from nothing."""
    final = data_dir / DATABASE_FILE
    partial = final.with_name(f"{DATABASE_FILE}.seeding")
    leftovers = [partial.with_name(partial.name + suffix) for suffix in ("", "-wal", "-shm")]
    for path in leftovers:
        path.unlink(missing_ok=True)
    rt = build_runtime(
        settings.model_copy(update={"database_url": f"sqlite:///{partial}"}), clock=clock
    )
    try:
        seed.seed(rt)
    finally:
        rt.db.dispose()
    with closing(sqlite3.connect(partial, isolation_level=None)) as conn:
        # Everything into the file itself: its WAL would not follow it to the new name.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(partial, final)
    for path in leftovers:
        path.unlink(missing_ok=True)


def _bind_problem(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"Port {port} on {HOST} is already in use; stop what is using it, or pick another "
            "port with --port (--port 0 picks a free one)."
        )
    if exc.errno == errno.EACCES:
        return f"Not allowed to listen on port {port}; pick a port above 1023 with --port."
    return f"Cannot listen on {HOST}:{port} ({exc.strerror or exc})."


def run_demo(port: int = DEFAULT_PORT, data_dir: Path = DEFAULT_DIR) -> None:
    """``licensebot demo``: build, print where to look, serve until Ctrl-C or SIGTERM."""
    configure_logging(logging.WARNING)  # the page is the demo's output; only problems here
    runner = DemoRunner(data_dir, port=port).open()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        runner.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    seeded = "with a new sample company" if runner.seeded else "with the sample company kept"
    print(f"licensebot demo: open {runner.url}/demo", flush=True)
    print(
        "This is a local simulation of Slack (nothing is sent to Slack); the demo's data, "
        f"{seeded}, is in {runner.data_dir} (delete the folder to start over). "
        "Stop with Ctrl-C.",
        flush=True,
    )
    runner.serve()
    print("licensebot demo: stopped.", flush=True)

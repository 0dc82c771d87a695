"""What the HTTP benchmarks share: the bot served as deployed, the bare-ack ceiling, a seeded
company, a local Slack that answers at once, and an open-loop load generator.

- The bot is a real ``licensebot serve`` child process (waitress, the deployed settings) talking
  to a :class:`SlackSim` in this process, started in fast mode (no Block Kit validation, no
  recording copies) so the sim's own work does not stand in for Slack's.
- The ceiling is ``python -m bench.bareapp``: a Bolt app that only acks, with real signature
  checks and ``process_before_response=True``, behind the same waitress with the same threads.
- The load generator is open-loop: request *k* is due at ``t0 + k / rate`` whatever happened to
  the earlier ones, and its latency counts from that due time, so a stalled server shows up as
  latency instead of quietly lowering the rate (coordinated omission).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot import catalog, directory, keys, requests
from bot.runtime import Runtime, build_runtime
from bot.settings import Settings
from bot.slacksim.server import SlackSim
from handlers import ids
from storage import audit
from storage.models import Assignment, LicenseRequest, OutboxMessage, StepApprover

TOKEN = "xoxb-bench-token"
SECRET = "bench-signing-secret-0123456789abcdef"
LICENSEBOT = str(Path(sys.executable).with_name("licensebot"))
IT = ("UIT00001", "UIT00002")
IT_CHANNEL = "CIT00001"


def manager(i: int) -> str:
    return f"UM{i:06d}"


def employee(i: int) -> str:
    return f"UE{i:06d}"


# --- percentiles ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --- the seeded company -----------------------------------------------------------------------


def tool(r: int) -> str:
    """The seat product slash requests ask for in repetition ``r`` (a fresh one each time, so
    no request is refused as a duplicate of an earlier repetition's)."""
    return f"tool{r}"


def catalog_yaml(tools: int) -> str:
    lines = [
        "groups:",
        f"  it-team: [{', '.join(IT)}]",
        "products:",
        # Approve clicks decide the (only) manager step of an "ide" request: a key is handed out.
        "  - {id: ide, name: Bench IDE, vendor: Bench, delivery: key, seats: 1000000,",
        "     cost_per_seat: 100, approval: [manager]}",
        # Approved automatically at seeding: every employee holds an editor key to reveal.
        "  - {id: editor, name: Bench Editor, vendor: Bench, delivery: key, seats: 1000000,",
        "     cost_per_seat: 10, approval: []}",
    ]
    for r in range(tools):
        lines += [
            f"  - {{id: {tool(r)}, name: Bench Tool {r}, vendor: Bench, delivery: seat,",
            "     seats: 1000000, cost_per_seat: 5, approval: [manager]}",
        ]
    return "\n".join(lines) + "\n"


def directory_csv(teams: int) -> str:
    rows = ["slack_user_id,email,name,manager_slack_user_id,department"]
    rows += [f"{u},{u.lower()}@example.com,IT {u},,IT" for u in IT]
    for i in range(teams):
        m, e = manager(i), employee(i)
        rows.append(f"{m},{m.lower()}@example.com,Manager {i},,Eng")
        rows.append(f"{e},{e.lower()}@example.com,Employee {i},{m},Eng")
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Seeded:
    """What the load can click: pending "ide" requests (one per team, each with its manager's
    card posted) and every employee's editor key."""

    teams: int
    pending: list[tuple[int, str, str, str, str]]  # request_id, requester, approver, channel, ts
    reveals: list[tuple[str, int]]  # holder, assignment_id


def bench_settings(database_url: str) -> dict[str, str]:
    """Fresh secrets for one benchmark database (shared by this process and the bot)."""
    return {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "LICENSEBOT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "LICENSEBOT_AUDIT_KEYS": audit.generate_key(),
        "LICENSEBOT_IT_CHANNEL": IT_CHANNEL,
    }


def runtime(env: dict[str, str]) -> Runtime:
    """This process's own runtime on the benchmark database (for seeding and checking)."""
    settings = Settings(
        _env_file=None,  # no .env: the benchmark's settings only
        database_url=env["DATABASE_URL"],
        licensebot_encryption_keys=SecretStr(env["LICENSEBOT_ENCRYPTION_KEYS"]),
        licensebot_audit_keys=SecretStr(env["LICENSEBOT_AUDIT_KEYS"]),
        licensebot_it_channel=env["LICENSEBOT_IT_CHANNEL"],
    )
    return build_runtime(settings)


def seed(rt: Runtime, *, teams: int, tools: int, holders: int, cards: bool = True) -> None:
    """Catalog, directory, keys, one pending "ide" request per team and an editor key for the
    first ``holders`` employees, all through the bot's own services. With ``cards`` the approval
    cards stay queued (the bot posts them when it starts: Approve clicks then update a real
    card); every other seeding notification is marked sent."""
    catalog.load_catalog(rt, catalog_yaml(tools), actor="bench")
    directory.import_directory(rt, directory_csv(teams), actor="bench")
    keys.import_keys(rt, "ide", [f"IDE-{i:08d}-BENCH-KEY" for i in range(teams)], actor="bench")
    if holders:
        keys.import_keys(
            rt, "editor", [f"EDT-{i:08d}-BENCH-KEY" for i in range(holders)], actor="bench"
        )
    for i in range(teams):
        requests.submit(rt, asked_by=employee(i), product_id="ide", justification="bench")
        if i < holders:
            requests.submit(rt, asked_by=employee(i), product_id="editor", justification="bench")
    table = OutboxMessage.__table__  # type: ignore[attr-defined]  # SQLModel table
    kept = ["approval_card"] if cards else []
    with rt.db.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.kind.not_in(kept)).values(status="sent"))


def wait_for_outbox(rt: Runtime, *, timeout: float = 600.0) -> None:
    """Until the bot has delivered every pending notification (the seeded cards, a run's DMs),
    so one run's deliveries do not load the next. Rows being delivered are leased (their next
    attempt pushed a minute ahead), so they count too; only hiding a revealed key again, due
    minutes later, is not waited for."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]  # SQLModel table
    deadline = time.monotonic() + timeout
    left = 0
    while time.monotonic() < deadline:
        with rt.db.engine.connect() as conn:
            left = conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.status == "pending", table.c.kind != "mask_reveal")
            ).scalar_one()
        if not left:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the bot still has {left} notifications to deliver after {timeout:.0f} s")


def seeded(rt: Runtime, teams: int) -> Seeded:
    req = LicenseRequest.__table__  # type: ignore[attr-defined]  # SQLModel table
    step = StepApprover.__table__  # type: ignore[attr-defined]
    asg = Assignment.__table__  # type: ignore[attr-defined]
    with rt.db.engine.connect() as conn:
        pending = conn.execute(
            sa.select(
                req.c.id,
                req.c.requester_id,
                step.c.approver_id,
                step.c.card_channel,
                step.c.card_ts,
            )
            .join(step, (step.c.request_id == req.c.id) & (step.c.step == req.c.step))
            .where(req.c.status == "pending", req.c.product_id == "ide")
            .order_by(req.c.id)
        ).all()
        reveals = conn.execute(
            sa.select(asg.c.user_id, asg.c.id)
            .where(asg.c.product_id == "editor", asg.c.released_at.is_(None))
            .order_by(asg.c.id)
        ).all()
    return Seeded(
        teams,
        [(int(r[0]), r[1], r[2], r[3] or "", r[4] or "") for r in pending],
        [(r[0], int(r[1])) for r in reveals],
    )


def slack_sim(teams: int) -> SlackSim:
    sim = SlackSim(bot_token=TOKEN, fast=True)
    for u in IT:
        sim.add_user(u, name=u.lower())
    for i in range(teams):
        sim.add_user(manager(i), name=f"m{i}")
        sim.add_user(employee(i), name=f"e{i}")
    sim.add_channel(IT_CHANNEL, name="it-licenses")
    return sim.start()


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "LICENSEBOT_", "DATABASE_URL"))
    }
    env.update(extra)
    return env


class Child:
    """An HTTP server child process, answering ``health`` when ``start`` returns."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, health: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [*argv, "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + health).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"{argv[:3]} exited at start; see {log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[:3]} did not answer within 60 s; see {log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def bot_process(
    env: dict[str, str], sim: SlackSim, log: Path, *, deploy: str = "single"
) -> Iterator[Child]:
    """``licensebot serve`` exactly as deployed, on ``env``'s database, talking to ``sim``.
    ``deploy="split"``: the yielded process is ``--role web``; a second one (``--role all``,
    sent no requests) delivers the outbox and runs the jobs."""
    env = child_env({**env, "SLACK_API_URL": sim.api_url})
    argv = [LICENSEBOT, "serve"]
    with ExitStack() as started:  # stopped last first: the web process, then the worker
        if deploy == "split":
            worker = Child([*argv, "--role", "all"], env, log.with_suffix(".all.log"), "/healthz")
            started.callback(worker.stop)
            argv += ["--role", "web"]
        child = Child(argv, env, log, "/healthz")
        started.callback(child.stop)
        yield child


@contextmanager
def bare_process(log: Path) -> Iterator[Child]:
    """The ceiling: an ack-only Bolt app served like the bot (``bench/bareapp.py``)."""
    child = Child(
        [sys.executable, "-m", "bench.bareapp"],
        child_env({"SLACK_SIGNING_SECRET": SECRET}),
        log,
        "/healthz",
    )
    try:
        yield child
    finally:
        child.stop()


# --- signed Slack requests (shapes as in bot/slacksim/sender.py) -------------------------------

Body = tuple[bytes, str]  # body, content type


def sign(body: bytes, timestamp: int) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()


class Requests:
    """Builds the signed bodies Slack would send, minting trigger IDs and response URLs from
    the sim so the bot's replies land somewhere real."""

    def __init__(self, sim: SlackSim) -> None:
        self.sim = sim
        self._events = itertools.count(1)

    def _user(self, user: str) -> dict[str, Any]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0001"}

    def slash(self, user: str, text: str) -> Body:
        channel = self.sim.dm_channel(user)
        fields = {
            "team_id": self.sim.team_id,
            "team_domain": self.sim.team_domain,
            "channel_id": channel,
            "channel_name": "directmessage",
            "user_id": user,
            "user_name": user.lower(),
            "command": ids.COMMAND,
            "text": text,
            "api_app_id": self.sim.app_id,
            "is_enterprise_install": "false",
            "response_url": self.sim.new_response_url(user=user, channel=channel),
            "trigger_id": self.sim.new_trigger_id(user),
        }
        return urlencode(fields).encode(), "application/x-www-form-urlencoded"

    def click(self, user: str, action_id: str, value: str, *, channel: str, ts: str) -> Body:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.sim.app_id,
            "trigger_id": self.sim.new_trigger_id(user),
            "team": {"id": self.sim.team_id, "domain": self.sim.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "channel": {"id": channel, "name": "directmessage"},
            "state": {"values": {}},
            "response_url": self.sim.new_response_url(
                user=user, channel=channel, kind="actions", source_ts=ts
            ),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "bench",
                    "value": value,
                    "text": {"type": "plain_text", "text": "Click"},
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, "application/x-www-form-urlencoded"

    def approve(self, approver: str, request_id: int, channel: str, ts: str) -> Body:
        return self.click(
            approver,
            ids.ACTION_APPROVE,
            f"{request_id}:0",
            channel=channel or "D" + approver,
            ts=ts or "1.000001",
        )

    def reveal(self, holder: str, assignment_id: int) -> Body:
        return self.click(
            holder, ids.ACTION_REVEAL, str(assignment_id), channel="D" + holder, ts="1.000001"
        )

    def home(self, user: str) -> Body:
        envelope = {
            "team_id": self.sim.team_id,
            "api_app_id": self.sim.app_id,
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": "D" + user,
                "tab": "home",
                "event_ts": f"{time.time():.6f}",
            },
            "type": "event_callback",
            "event_id": f"EvBench{next(self._events):09d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.sim.team_id,
                    "user_id": self.sim.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        return json.dumps(envelope).encode(), "application/json"


# --- the load generator -----------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    kind: str
    due: float  # perf_counter when it was due (scheduled)
    sent: float  # when it went out
    done: float
    status: int  # 0: no HTTP answer (connection error, timeout)

    @property
    def latency(self) -> float:
        """From the due time, so queueing behind a slow server counts."""
        return self.done - self.due

    @property
    def ok(self) -> bool:
        return self.status == 200


Make = Callable[[int], tuple[str, Body]]  # request number -> kind, (body, content type)


class _Conn(threading.local):
    conn: http.client.HTTPConnection | None = None


def _post(local: _Conn, host: str, port: int, path: str, body: Body, timeout: float) -> int:
    data, content_type = body
    ts = int(time.time())
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(data, ts),
    }
    for attempt in (0, 1):
        conn = local.conn or http.client.HTTPConnection(host, port, timeout=timeout)
        local.conn = conn
        try:
            conn.request("POST", path, body=data, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                local.conn = None
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            local.conn = None
            if attempt:  # a keep-alive connection the server closed is retried once
                return 0
    return 0


def open_loop(
    url: str, make: Make, *, rate: float, count: int, threads: int = 64, timeout: float = 10.0
) -> list[Result]:
    """Send ``count`` requests at ``rate`` per second, request *k* due at ``t0 + k / rate``;
    keep-alive connections, one per worker thread."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    due: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    results: list[Result] = []
    lock = threading.Lock()
    local = _Conn()

    ready = threading.Barrier(threads + 1)

    def work() -> None:
        # Connect before the clock starts: a run measures requests, not TCP handshakes.
        local.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        local.conn.connect()
        ready.wait()
        while (item := due.get()) is not None:
            k, at = item
            kind, body = make(k)
            sent = time.perf_counter()
            status = _post(local, host, port, path, body, timeout)
            done = time.perf_counter()
            with lock:
                results.append(Result(kind, at, sent, done, status))
        if local.conn is not None:
            local.conn.close()

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    t0 = time.perf_counter() + 0.05
    for k in range(count):
        at = t0 + k / rate
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((k, at))
    for _ in workers:
        due.put(None)
    for w in workers:
        w.join()
    return results


def closed_loop(url: str, bodies: list[Body], *, threads: int) -> tuple[float, list[Result]]:
    """Send every body as fast as ``threads`` clients can; returns (seconds, results)."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    todo: queue.SimpleQueue[Body | None] = queue.SimpleQueue()
    for body in bodies:
        todo.put(body)
    results: list[Result] = []
    lock = threading.Lock()
    local = _Conn()

    def work() -> None:
        while (body := todo.get()) is not None:
            sent = time.perf_counter()
            status = _post(local, host, port, path, body, 10.0)
            done = time.perf_counter()
            with lock:
                results.append(Result("click", sent, sent, done, status))
        if local.conn is not None:
            local.conn.close()

    for _ in range(threads):
        todo.put(None)
    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start, results

"""Three real `licensebot serve` replicas on one PostgreSQL, requests sent round-robin.

Any replica may take any request: a decision is row-locked, a scheduled job is claimed once per
period, an outbox row is leased by one dispatcher. The replicas are started once for the module
(starting three processes is the slow part); each test works on its own requests, so they do not
need a fresh database.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from cryptography.fernet import Fernet
from sqlalchemy import func
from sqlmodel import col, select

from bot import catalog, directory, keys, notifications
from bot.clock import SystemClock
from bot.runtime import Runtime
from bot.scheduler import Scheduler
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Message, SlackSim
from storage.audit import AuditSigner, generate_key
from storage.db import Database
from storage.models import AuditEntry, Decision, JobRun, LicenseRequest, OutboxMessage
from storage.vault import Vault
from tests import company
from tests.conftest import reset_database
from tests.e2e.conftest import PEOPLE, SECRET, TOKEN, dm_with, ephemeral_to
from tests.e2e.processes import ServeProcess, serve_env

IT_CHANNEL = "CIT00001"
IT3 = "U0IT00003"
REPLICAS = 3
POOLS = [f"pool-{n}" for n in range(1, 5)]

# IntelliJ for the journey (manager, then one of three IT approvers); seat pools whose single
# step has three approvers, who all click at the same moment.
CATALOG = f"""
groups:
  it-team: [{company.IT1}, {company.IT2}, {IT3}]
products:
  - id: intellij
    name: JetBrains IntelliJ IDEA Ultimate
    vendor: JetBrains
    delivery: key
    seats: 10
    cost_per_seat: 599
    approval: [manager, it-team]
""" + "".join(
    f"""  - id: {pool}
    name: Pool {pool[-1]} Seat
    vendor: Pools
    delivery: seat
    seats: 10
    cost_per_seat: 1
    approval: [it-team]
"""
    for pool in POOLS
)
DIRECTORY = company.DIRECTORY + f"{IT3},it3@example.com,Ida IT,,IT\n"
KEY = "IJ-REPL-1111-SECRET-KEY-0001"


@dataclass
class Cluster:
    rt: Runtime
    slack: SlackSim
    replicas: list[ServeProcess]
    senders: list[SlackSender]

    def round_robin(self) -> Iterator[SlackSender]:
        """The load balancer: each request goes to the next replica in turn."""
        return itertools.cycle(self.senders)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL): replicas share one database there")
    reset_database(url)
    encryption_key, audit_key = Fernet.generate_key().decode(), generate_key()
    db = Database(url)
    db.upgrade()
    # The replicas run on the wall clock, so the test's own writes do too.
    rt = Runtime(
        db=db,
        vault=Vault([encryption_key]),
        clock=SystemClock(),
        audit_keys=AuditSigner([audit_key]),
        admins=frozenset({company.ADMIN}),
        it_channel=IT_CHANNEL,
    )
    catalog.load_catalog(rt, CATALOG, actor="test")
    directory.import_directory(rt, DIRECTORY, actor="test")
    keys.import_keys(rt, "intellij", [KEY], actor="test")
    # The jobs are stored, and audit-head was due yesterday while nothing ran: every replica
    # finds it due the moment it starts.
    first = Scheduler(rt)
    first.start()
    first.stop()
    store = SQLAlchemyJobStore(engine=db.engine)
    store.start(BackgroundScheduler(timezone="UTC"), "default")
    job = store.lookup_job("audit-head")
    assert job is not None
    job._modify(next_run_time=datetime.now(UTC) - timedelta(days=1))
    store.update_job(job)

    slack = SlackSim(bot_token=TOKEN)
    for user_id, name in {**PEOPLE, IT3: "ida"}.items():
        slack.add_user(user_id, name=name, email=f"{name}@example.com")
    slack.add_channel(IT_CHANNEL, name="it-licenses")
    slack.start()
    env = serve_env(
        url,
        slack.api_url,
        encryption_key,
        LICENSEBOT_AUDIT_KEYS=audit_key,
        LICENSEBOT_IT_CHANNEL=IT_CHANNEL,
        LICENSEBOT_ADMINS=company.ADMIN,
    )
    cwd = tmp_path_factory.mktemp("replicas")
    # All three start at once, as `docker compose up --scale bot=3` starts them.
    started: list[ServeProcess] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            started.append(ServeProcess(env, cwd))
        except BaseException as exc:  # reported below, with the process's own output
            failures.append(exc)

    starters = [threading.Thread(target=start) for _ in range(REPLICAS)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    cluster = Cluster(
        rt, slack, started, [SlackSender(slack, p.url + "/slack/events", SECRET) for p in started]
    )
    try:
        assert not failures, failures
        yield cluster
    finally:
        for sender in cluster.senders:
            sender.close()
        errs = [p.stop() for p in started]
        slack.stop()
        db.dispose()
    assert all("Traceback" not in err for err in errs), errs


def drained(cluster: Cluster) -> None:
    """Wait until every replica's dispatcher has delivered everything queued so far (but the
    masking of a revealed key, which is due minutes later)."""

    def nothing_pending() -> bool:
        with cluster.rt.db.read() as s:
            return not s.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.status == "pending",
                    OutboxMessage.kind != notifications.MASK_REVEAL,
                )
            ).one()

    cluster.slack.wait_for(nothing_pending, timeout=30, interval=0.05, what="outbox drained")


def dms(slack: SlackSim, user: str, containing: str) -> list[Message]:
    return [
        m
        for m in slack.messages_in(slack.dm_channel(user))
        if not m.is_ephemeral and containing in m.all_text
    ]


def test_a_scheduled_job_due_in_every_replica_runs_once(cluster: Cluster) -> None:
    slack = cluster.slack

    def head_posted() -> list[Message]:
        return [m for m in slack.messages_in(IT_CHANNEL) if "Audit log on" in m.all_text]

    slack.wait_for(head_posted, timeout=30, what="audit head posted")
    drained(cluster)
    assert len(head_posted()) == 1
    with cluster.rt.db.read() as s:
        claims = s.exec(select(JobRun).where(JobRun.job_id == "audit-head")).all()
    assert len(claims) == 1


def test_a_journey_through_the_replicas(cluster: Cluster) -> None:
    slack = cluster.slack
    lb = cluster.round_robin()
    assert next(lb).slash(company.EMPLOYEE, "request intellij for the replicas").status_code == 200
    card = slack.wait_for(dm_with(slack, company.MANAGER, "for the replicas"), timeout=10)
    assert next(lb).click(company.MANAGER, card, label="Approve").status_code == 200
    it_card = slack.wait_for(dm_with(slack, IT3, "for the replicas"), timeout=10)
    assert next(lb).click(IT3, it_card, label="Approve").status_code == 200
    approved = slack.wait_for(dm_with(slack, company.EMPLOYEE, "Reveal key"), timeout=10)
    assert next(lb).click(company.EMPLOYEE, approved, label="Reveal key").status_code == 200
    modal = slack.wait_for(lambda: slack.open_modal(company.EMPLOYEE), timeout=10)
    assert KEY in modal.all_text


def click_when_released(
    slack: SlackSim,
    replica_url: str,
    approver: str,
    card: Message,
    barrier: threading.Barrier,
    answers: dict[str, int],
) -> None:
    """Approve on ``card``; the payload is built first, then sent when all clickers are ready."""

    def wait_for_the_others(_request: httpx.Request) -> None:
        barrier.wait(10)

    client = httpx.Client(timeout=10, event_hooks={"request": [wait_for_the_others]})
    with client, SlackSender(slack, replica_url + "/slack/events", SECRET, client=client) as s:
        answers[approver] = s.click(approver, card, label="Approve").status_code


def test_approve_clicked_at_once_on_every_replica_decides_once(cluster: Cluster) -> None:
    slack, rt = cluster.slack, cluster.rt
    approvers = [company.IT1, company.IT2, IT3]
    lb = cluster.round_robin()
    for pool in POOLS:
        name = f"Pool {pool[-1]} Seat"
        assert next(lb).slash(company.EMPLOYEE, f"request {pool}").status_code == 200
        cards = [slack.wait_for(dm_with(slack, a, name), timeout=10) for a in approvers]
        # Each approver's click goes to a different replica; all three leave together.
        barrier = threading.Barrier(REPLICAS)
        answers: dict[str, int] = {}
        threads = [
            threading.Thread(
                target=click_when_released,
                args=(slack, replica.url, approver, card, barrier, answers),
            )
            for replica, approver, card in zip(cluster.replicas, approvers, cards, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == dict.fromkeys(approvers, 200)
        drained(cluster)

        with rt.db.read() as s:
            req = s.exec(
                select(LicenseRequest)
                .where(LicenseRequest.product_id == pool)
                .order_by(col(LicenseRequest.id).desc())
            ).first()
            assert req is not None and req.status == "approved"
            decisions = s.exec(select(Decision).where(Decision.request_id == req.id)).all()
            approved_entries = s.exec(
                select(func.count())
                .select_from(AuditEntry)
                .where(
                    AuditEntry.subject == f"request:{req.id}",
                    AuditEntry.action == "step.approved",
                )
            ).one()
        assert len(decisions) == 1, pool
        assert approved_entries == 1, pool
        winner = decisions[0].decider_id
        for loser in set(approvers) - {winner}:
            slack.wait_for(ephemeral_to(slack, loser, f"<@{winner}>"), timeout=10)
        assert len(dms(slack, company.EMPLOYEE, f"{name}")) == 1, pool


def test_the_outbox_is_delivered_once_by_three_dispatchers(cluster: Cluster) -> None:
    slack, rt = cluster.slack, cluster.rt
    count = 120
    with rt.db.transaction() as session:
        for n in range(count):
            hook = slack.new_response_url(
                user=company.EMPLOYEE, channel=slack.dm_channel(company.EMPLOYEE), kind="actions"
            )
            notifications.queue(
                session,
                notifications.RESPOND,
                now=rt.clock.now(),
                response_url=hook,
                text=f"outbox probe {n:04d}.",
            )
    drained(cluster)
    # One Slack message per queued row: a row sent by two dispatchers would show twice.
    seen = Counter(
        probe
        for m in slack.messages
        for probe in set(re.findall(r"outbox probe (\d{4})", m.all_text))
    )
    assert seen == Counter(f"{n:04d}" for n in range(count))
    with rt.db.read() as s:
        attempts = s.exec(
            select(OutboxMessage.attempts).where(OutboxMessage.kind == notifications.RESPOND)
        ).all()
    assert set(attempts) == {1}

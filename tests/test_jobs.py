"""Scheduled jobs: fixed IDs in a persistent store, once per period even when raced."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlmodel import select

from bot import jobs
from bot.cli import cli
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.scheduler import Scheduler, describe
from storage.db import Database
from storage.models import AuditHead, OutboxMessage


def heads_queued(rt: Runtime) -> list[dict[str, object]]:
    with rt.db.read() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "audit_head")).all()
        return [r.payload for r in rows]


def test_audit_head_is_published_once_a_day(runtime: Runtime, clock: ManualClock) -> None:
    assert jobs.publish_audit_head(runtime, clock.now()) is True
    assert jobs.publish_audit_head(runtime, clock.now()) is False
    with runtime.db.read() as s:
        head = s.get(AuditHead, 1)
    assert head is not None
    assert heads_queued(runtime) == [
        {"entries": head.last_id, "head": head.hash, "day": clock.now().date().isoformat()}
    ]
    clock.advance(timedelta(days=1))
    assert jobs.publish_audit_head(runtime, clock.now()) is True
    assert len(heads_queued(runtime)) == 2


def test_two_processes_racing_for_the_same_day_publish_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    # Two runtimes with their own engines, as two `serve` processes on one database.
    other = Runtime(
        db=Database(runtime.db.url), vault=runtime.vault, clock=clock, audit_keys=runtime.audit_keys
    )
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def fire(rt: Runtime) -> None:
        barrier.wait()
        results.append(jobs.publish_audit_head(rt, clock.now()))

    threads = [threading.Thread(target=fire, args=(rt,)) for rt in (runtime, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.db.dispose()
    assert sorted(results) == [False, True]
    assert len(heads_queued(runtime)) == 1


def test_the_scheduler_keeps_fixed_job_ids_in_the_database(runtime: Runtime) -> None:
    for _ in range(2):  # a restart replaces the stored jobs instead of adding more
        scheduler = Scheduler(runtime)
        scheduler.start()
        next_runs = scheduler.next_runs()
        scheduler.stop()
        assert set(next_runs) == set(jobs.JOBS) and all(next_runs.values())
    assert "apscheduler_jobs" in inspect(runtime.db.engine).get_table_names()
    with runtime.db.engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM apscheduler_jobs ORDER BY id")).scalars().all()
    assert ids == sorted(jobs.JOBS)


def test_jobs_list_and_run_from_the_cli(
    runtime: Runtime, database_url: str, encryption_key: str
) -> None:
    env = {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}
    listed = CliRunner().invoke(cli, ["jobs", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("audit-head\t5 0 * * *\tnext ")
    first = CliRunner().invoke(cli, ["jobs", "run", "audit-head"], env=env)
    again = CliRunner().invoke(cli, ["jobs", "run", "audit-head"], env=env)
    assert (first.output, again.output) == (
        "audit-head: done.\n",
        "audit-head: already done for this period.\n",
    )
    assert len(heads_queued(runtime)) == 1
    # Every registered job, in order (other issues add jobs beside audit-head).
    assert [line.id for line in describe(runtime)] == list(jobs.JOBS)


def test_runs_missed_during_downtime_happen_once_at_start(
    runtime: Runtime, clock: ManualClock
) -> None:
    from datetime import UTC, datetime

    from apscheduler.events import EVENT_JOB_EXECUTED
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    first = Scheduler(runtime)
    first.start()
    first.stop()
    # The bot was down for three days: the stored audit-head job was due three times.
    store = SQLAlchemyJobStore(engine=runtime.db.engine)
    store.start(BackgroundScheduler(timezone="UTC"), "default")
    job = store.lookup_job("audit-head")
    job._modify(next_run_time=datetime.now(UTC) - timedelta(days=3))
    store.update_job(job)

    ran: list[str] = []
    second = Scheduler(runtime)
    second._scheduler.add_listener(lambda event: ran.append(event.job_id), EVENT_JOB_EXECUTED)
    second.start()
    try:
        deadline = time.monotonic() + 10
        while not ran and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # room for any replay of the other missed runs, which must not come
    finally:
        second.stop()
    assert ran == ["audit-head"]
    assert len(heads_queued(runtime)) == 1

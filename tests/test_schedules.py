"""Schedules: two schedulers on one PostgreSQL run a due job once per period; the schedule
settings show in `licensebot jobs list`, and bad ones are refused in one line."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner
from sqlmodel import select

from bot import catalog, directory
from bot.cli import cli
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.scheduler import Scheduler
from bot.seats import import_seats
from storage.db import Database
from storage.models import AuditEntry, JobRun, OutboxMessage
from tests.company import DIRECTORY, EMPLOYEE
from tests.conftest import START

RACED = ("audit-head", "expiry")


def _make_due(rt: Runtime, job_ids: tuple[str, ...]) -> None:
    """Move the stored jobs' next run to just now, as when their time comes."""
    store = SQLAlchemyJobStore(engine=rt.db.engine)
    store.start(BackgroundScheduler(timezone="UTC"), "default")
    for job_id in job_ids:
        job = store.lookup_job(job_id)
        assert job is not None
        job._modify(next_run_time=datetime.now(UTC) - timedelta(seconds=1))
        store.update_job(job)


def _count(rt: Runtime, model: type, *where: object) -> int:
    with rt.db.read() as s:
        return len(s.exec(select(model).where(*where)).all())  # type: ignore[call-overload]  # any table


def test_two_schedulers_on_one_postgres_run_each_due_job_once_per_period(
    runtime: Runtime, clock: ManualClock
) -> None:
    if not runtime.db.url.startswith("postgresql"):
        pytest.skip(
            "needs PostgreSQL (TEST_DATABASE_URL): several `serve` processes share one only "
            "there; SQLite serializes writers in one file"
        )
    # A time-limited seat that has ended: the expiry job's work shows as one audit entry.
    catalog.load_catalog(
        runtime,
        "products:\n  - {id: trial, name: Trial, delivery: seat, seats: 1, approval: [], "
        "max_days: 1}\n",
        actor="test",
    )
    directory.import_directory(runtime, DIRECTORY, actor="test")
    assigned = (START - timedelta(days=2)).isoformat()
    import_seats(
        runtime, f"product_id,slack_user_id,assigned_at\ntrial,{EMPLOYEE},{assigned}\n", actor="t"
    )

    # Two runtimes with their own engines, as two `serve` processes on one database.
    other = Runtime(
        db=Database(runtime.db.url), vault=runtime.vault, clock=clock, audit_keys=runtime.audit_keys
    )
    schedulers = [Scheduler(runtime), Scheduler(other)]
    runs: list[tuple[int, str, bool]] = []  # (scheduler, job, did the period's work)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def listen(which: int) -> None:
        def record(event: JobExecutionEvent) -> None:
            with lock:
                if event.exception is not None:
                    errors.append(event.exception)
                else:
                    runs.append((which, event.job_id, bool(event.retval)))

        schedulers[which]._scheduler.add_listener(record, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    for which, scheduler in enumerate(schedulers):
        listen(which)
        scheduler.start()
    try:
        for day in range(1, 3):
            with lock:
                runs.clear()
            _make_due(runtime, RACED)
            # Both processes wake for the same due time, as their clocks agree.
            barrier = threading.Barrier(2)
            wakers = [
                threading.Thread(target=lambda s=s, b=barrier: (b.wait(), s._scheduler.wakeup()))
                for s in schedulers
            ]
            for t in wakers:
                t.start()
            for t in wakers:
                t.join()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with lock:
                    done = {job for _, job, did in runs if did}
                if done == set(RACED) or errors:
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # room for the other process's run of the same period to finish
            assert errors == []
            with lock:
                worked = sorted(job for _, job, did in runs if did)
            assert worked == sorted(RACED), runs  # each job did its work exactly once
            period = clock.now().date().isoformat()
            for job_id in RACED:
                assert (
                    _count(runtime, JobRun, JobRun.job_id == job_id, JobRun.period == period) == 1
                )
            assert _count(runtime, OutboxMessage, OutboxMessage.kind == "audit_head") == day
            assert _count(runtime, AuditEntry, AuditEntry.action == "seat.expired") == 1
            clock.advance(timedelta(days=1))
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        other.db.dispose()
    # Nothing more came from a run still in flight when the schedulers stopped.
    assert _count(runtime, OutboxMessage, OutboxMessage.kind == "audit_head") == 2
    assert _count(runtime, OutboxMessage, OutboxMessage.kind == "seat_expired") == 1


def _env(database_url: str, encryption_key: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key, **extra}


def test_jobs_list_shows_the_timezone_and_the_digest_schedule(
    runtime: Runtime, database_url: str, encryption_key: str
) -> None:
    env = _env(
        database_url,
        encryption_key,
        LICENSEBOT_TIMEZONE="Asia/Tokyo",
        LICENSEBOT_DIGEST_CRON="30 7 * * fri",
    )
    listed = CliRunner().invoke(cli, ["jobs", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[0]: line for line in listed.output.splitlines()}
    # Next runs are in LICENSEBOT_TIMEZONE (Tokyo has no daylight saving: always +09:00).
    assert re.fullmatch(
        r"digest\t30 7 \* \* fri\tnext \d{4}-\d\d-\d\dT07:30\+09:00\t.+", lines["digest"]
    )
    assert re.fullmatch(
        r"expiry\t0 8 \* \* \*\tnext \d{4}-\d\d-\d\dT08:00\+09:00\t.+", lines["expiry"]
    )
    day = re.search(r"next (\d{4}-\d\d-\d\d)", lines["digest"])
    assert day is not None and datetime.fromisoformat(day[1]).weekday() == 4  # a Friday


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("LICENSEBOT_TIMEZONE", "Mars/Olympus_Mons", "is not a time zone name"),
        ("LICENSEBOT_DIGEST_CRON", "0 25 * * mon", "is not a crontab schedule"),
        ("LICENSEBOT_DIGEST_CRON", "every monday", "write five fields"),
    ],
)
def test_a_bad_schedule_setting_is_one_line_naming_it(
    runtime: Runtime, database_url: str, encryption_key: str, setting: str, value: str, says: str
) -> None:
    result = CliRunner().invoke(
        cli, ["jobs", "list"], env=_env(database_url, encryption_key, **{setting: value})
    )
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"licensebot: {setting}:") and says in lines[0]

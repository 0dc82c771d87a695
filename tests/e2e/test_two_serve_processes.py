"""Two real `licensebot serve` processes on one PostgreSQL: a job due at start runs once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import select

from bot.runtime import Runtime
from bot.scheduler import Scheduler
from bot.slacksim.server import SlackSim
from storage.models import JobRun
from tests.e2e.conftest import TOKEN
from tests.e2e.processes import ServeProcess, serve_env

IT_CHANNEL = "CIT00001"


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim(bot_token=TOKEN) as s:
        s.add_channel(IT_CHANNEL, name="it-licenses")
        yield s


def test_a_job_missed_during_downtime_runs_once_with_two_serve_processes(
    runtime: Runtime, database_url: str, tmp_path: Path, sim: SlackSim, encryption_key: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL): two processes share one database there")
    # The jobs are stored, and audit-head was due yesterday while nothing ran.
    first = Scheduler(runtime)
    first.start()
    first.stop()
    store = SQLAlchemyJobStore(engine=runtime.db.engine)
    store.start(BackgroundScheduler(timezone="UTC"), "default")
    job = store.lookup_job("audit-head")
    assert job is not None
    job._modify(next_run_time=datetime.now(UTC) - timedelta(days=1))
    store.update_job(job)

    env = serve_env(
        database_url,
        sim.api_url,
        encryption_key,
        LICENSEBOT_IT_CHANNEL=IT_CHANNEL,
    )
    # Both start at once and either may find the job due: it runs once, coalesced, in one.
    processes: list[ServeProcess] = []
    starters = [
        threading.Thread(target=lambda: processes.append(ServeProcess(env, tmp_path)))
        for _ in range(2)
    ]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    errs: list[str] = []
    try:
        assert len(processes) == 2
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not [
            m for m in sim.messages_in(IT_CHANNEL) if "Audit log on" in m.all_text
        ]:
            time.sleep(0.1)
        time.sleep(1.0)  # room for a second post, which must not come
    finally:
        errs = [p.stop() for p in processes]
    heads = [m for m in sim.messages_in(IT_CHANNEL) if "Audit log on" in m.all_text]
    assert len(heads) == 1, errs
    with runtime.db.read() as s:
        claimed = s.exec(select(JobRun).where(JobRun.job_id == "audit-head")).all()
    assert len(claimed) == 1
    ran = [line for err in errs for line in err.splitlines() if "job=audit-head" in line]
    assert sum("did_work=True" in line for line in ran) == 1, ran
    assert all("Traceback" not in err for err in errs)

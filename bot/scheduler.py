"""APScheduler inside ``serve``: fixed job IDs in a persistent job store in our database.

APScheduler stores a job as an importable function plus serialisable arguments, so the stored
job is ``run_job("<id>")``; the runtime it needs is bound to the scheduler's worker threads.
Missed runs after downtime are coalesced into one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.jobs import JOBS
from bot.runtime import Runtime

log = logging.getLogger("licensebot.jobs")

# The stored jobs name a job ID only; each scheduler's worker threads know their own runtime,
# so two schedulers in one process (tests standing in for two `serve` processes) each run jobs
# with their own database engine.
_THREAD = threading.local()


def _bind_runtime(rt: Runtime) -> None:
    _THREAD.runtime = rt


def run_job(job_id: str) -> bool:
    """What APScheduler calls (module-level and importable, as its job stores require).

    True if this run did the period's work, False if another run (or process) had claimed it.
    """
    rt: Runtime | None = getattr(_THREAD, "runtime", None)
    if rt is None:
        log.error("event=job_skipped job=%s reason=no_runtime", job_id)
        return False
    did = JOBS[job_id].run(rt, rt.clock.now())
    log.info("event=job_ran job=%s did_work=%s", job_id, did)
    return did


@dataclass(frozen=True)
class JobLine:
    id: str
    cron: str
    description: str
    next_run: datetime | None


def describe(rt: Runtime) -> list[JobLine]:
    """Every job with its next run after now, computed from its schedule (LICENSEBOT_TIMEZONE)."""
    now = rt.clock.now()
    lines = []
    for spec in JOBS.values():
        cron = spec.schedule(rt.policy)
        trigger = CronTrigger.from_crontab(cron, timezone=rt.policy.timezone)
        lines.append(
            JobLine(spec.id, cron, spec.description, trigger.get_next_fire_time(None, now))
        )
    return lines


class Scheduler:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=rt.db.engine)},
            executors={
                "default": ThreadPoolExecutor(
                    4, pool_kwargs={"initializer": _bind_runtime, "initargs": (rt,)}
                )
            },
            # A run missed while no process was up happens once at start (coalesced), however
            # long ago it was due: the jobs are idempotent per period, so late beats never.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=rt.policy.timezone,
        )
        self._timezone = rt.policy.timezone

    def start(self) -> None:
        # Paused while the stored jobs are reconciled with JOBS, so nothing fires half-way.
        self._scheduler.start(paused=True)
        for spec in JOBS.values():
            trigger = CronTrigger.from_crontab(
                spec.schedule(self._rt.policy), timezone=self._timezone
            )
            stored = self._scheduler.get_job(spec.id)
            if stored is not None and str(stored.trigger) == str(trigger):
                # Keep its stored next run: if it was missed during downtime it runs once now.
                continue
            self._scheduler.add_job(
                run_job,
                trigger,
                args=[spec.id],
                id=spec.id,
                name=spec.description,
                replace_existing=True,
            )
        self._scheduler.resume()

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

"""Scheduled jobs. Each is a plain function of the runtime and ``now``, idempotent per period:
running it twice, or in two processes at once, does its work once (``storage.job_runs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot import digest, expiry, notifications, reclaim, reminders, renewals, reviews
from bot.connectors import pull as usage_pull
from bot.runtime import Policy, Runtime
from storage import job_runs
from storage.models import AuditHead


@dataclass(frozen=True)
class JobSpec:
    id: str
    description: str
    # crontab fields (minute hour day month day_of_week), or where the policy keeps them
    cron: str | Callable[[Policy], str]
    run: Callable[[Runtime, datetime], bool]  # True if it did something this period

    def schedule(self, policy: Policy) -> str:
        return self.cron(policy) if callable(self.cron) else self.cron


def publish_audit_head(rt: Runtime, now: datetime) -> bool:
    """Post the audit chain's head to IT once a day, so a rewrite of history shows against
    what Slack already holds."""
    period = now.date().isoformat()
    with rt.db.transaction() as session:
        if not job_runs.claim(session, "audit-head", period, now=now):
            return False
        head = session.get(AuditHead, 1)
        assert head is not None  # created by the first migration
        notifications.queue(
            session,
            notifications.AUDIT_HEAD,
            now=now,
            entries=head.last_id,
            head=head.hash,
            day=period,
        )
    rt.wake_dispatcher()
    return True


JOBS: dict[str, JobSpec] = {
    spec.id: spec
    for spec in (
        JobSpec("audit-head", "Post the audit chain's head to IT", "5 0 * * *", publish_audit_head),
        JobSpec(reclaim.JOB_ID, "Nudge idle seat holders; reclaim", "0 9 * * *", reclaim.run_daily),
        JobSpec(
            reminders.JOB_ID,
            "Remind approvers of undecided steps once; escalate them to it_admin",
            "*/15 * * * *",
            reminders.run,
        ),
        JobSpec(
            renewals.JOB_ID,
            "Post renewals 60/30/7 days ahead to IT, with seat figures",
            "30 8 * * *",
            renewals.run_daily,
        ),
        JobSpec(
            reviews.JOB_ID,
            "Start the quarterly access reviews (supersede unfinished ones)",
            reviews.QUARTERLY_CRON,
            reviews.run_quarterly,
        ),
        JobSpec(
            reviews.REMINDER_JOB_ID,
            "Remind access reviews open for 7 days (once)",
            reviews.REMINDER_CRON,
            reviews.run_reminders,
        ),
        JobSpec(
            usage_pull.JOB_ID,
            "Pull usage from the connectors (Okta)",
            "17 * * * *",
            usage_pull.run_hourly,
        ),
        JobSpec(
            expiry.JOB_ID,
            "Warn holders of time-limited seats; release ended ones",
            "0 8 * * *",
            expiry.run_daily,
        ),
        JobSpec(
            digest.JOB_ID,
            "Post the weekly IT digest (seats, idle cost, CSV, chart)",
            lambda policy: policy.digest_cron,
            digest.run_weekly,
        ),
    )
}

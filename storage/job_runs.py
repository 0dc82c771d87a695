"""One row per (job, period) that ran: the claim that makes a scheduled job run once.

Several processes may fire the same job at the same moment; the primary key lets exactly one
of them claim the period, inside the same transaction as the job's work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.models import JobRun


def claim(session: Session, job_id: str, period: str, *, now: datetime) -> bool:
    """True if this transaction now owns ``period`` of ``job_id``; False if someone did it."""
    if session.get(JobRun, (job_id, period)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(JobRun(job_id=job_id, period=period, ran_at=now))
    except IntegrityError:
        return False
    return True

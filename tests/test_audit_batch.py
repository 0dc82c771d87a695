"""``audit.append_many``: a batch is the same chain, hashes and signatures as one append each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from bot.runtime import Runtime
from storage import audit
from storage.audit import COMMITTED_EVENTS
from storage.db import Database
from storage.models import AuditEntry, AuditHead

COLUMNS = (
    "id",
    "at",
    "actor",
    "action",
    "subject",
    "details",
    "prev_hash",
    "hash",
    "key_id",
    "mac",
    "product_id",
)


def events(rt: Runtime, first: int, n: int) -> list[audit.Event]:
    now = rt.clock.now()
    return [
        audit.Event(
            at=now + timedelta(seconds=i),
            actor="licensebot",
            action="seat.nudged",
            subject=f"user:U{i:07d}",
            details={"product": "figma" if i % 2 else "intellij", "assignment": i, "n": "é"},
        )
        for i in range(first, first + n)
    ]


def stored(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as session:
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        head = session.exec(select(AuditHead.last_id, AuditHead.hash)).one()
    return [tuple(getattr(e, c) for c in COLUMNS) for e in entries] + [tuple(head)]


def one_by_one(rt: Runtime, batch: list[audit.Event]) -> None:
    with rt.db.transaction() as session:
        for e in batch:
            audit.append(
                session,
                rt.audit_keys,
                at=e.at,
                actor=e.actor,
                action=e.action,
                subject=e.subject,
                details=e.details,
            )


def test_a_batch_writes_exactly_what_single_appends_write(runtime: Runtime) -> None:
    first, batch, last = events(runtime, 0, 3), events(runtime, 3, 250), events(runtime, 253, 2)
    one_by_one(runtime, first)
    with runtime.db.transaction() as session:
        assert audit.append_many(session, runtime.audit_keys, batch) == 253
    one_by_one(runtime, last)
    batched = stored(runtime.db)

    # The same events appended one at a time, in a fresh log with the same key.
    with runtime.db.transaction() as session:
        session.execute(text("DELETE FROM audit_entry"))
        session.execute(
            text("UPDATE audit_head SET last_id = 0, hash = :genesis"), {"genesis": audit.GENESIS}
        )
    one_by_one(runtime, first + batch + last)
    assert stored(runtime.db) == batched
    with runtime.db.read() as session:
        report = audit.verify(session, runtime.audit_keys)
    assert report.intact, report.problem
    assert report.entries == 255


def test_appends_in_the_same_transaction_continue_the_chain(runtime: Runtime) -> None:
    with runtime.db.transaction() as session:
        audit.append(
            session, runtime.audit_keys, at=runtime.clock.now(), actor="a", action="x", subject="s"
        )
        audit.append_many(session, runtime.audit_keys, events(runtime, 0, 10))
        entry = audit.append(
            session, runtime.audit_keys, at=runtime.clock.now(), actor="a", action="y", subject="s"
        )
        assert entry.id == 12
        assert audit.append_many(session, runtime.audit_keys, []) == 12
        lines = list(session.info[COMMITTED_EVENTS])
    assert len(lines) == 12
    assert "event=seat.nudged" in lines[1] and "audit_id=2" in lines[1]
    with runtime.db.read() as session:
        report = audit.verify(session, runtime.audit_keys)
    assert report.intact and report.entries == 12


def test_a_failed_batch_writes_nothing(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError), runtime.db.transaction() as session:
        audit.append_many(session, runtime.audit_keys, events(runtime, 0, 5))
        raise RuntimeError("the scan failed after writing its entries")
    with runtime.db.read() as session:
        assert session.exec(select(AuditEntry)).all() == []
        assert session.exec(select(AuditHead.last_id)).one() == 0

"""``audit.defer``: entries written at commit in one batch, in the order of the calls."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from bot.runtime import Runtime
from storage import audit
from storage.models import AuditEntry, AuditHead


def actions(rt: Runtime) -> list[str]:
    with rt.db.read() as session:
        return list(session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))).all())


def test_deferred_entries_are_written_at_commit_in_call_order(runtime: Runtime) -> None:
    now = runtime.clock.now()
    keys = runtime.audit_keys
    with runtime.db.transaction() as session:
        audit.defer(session, keys, at=now, actor="a", action="one", subject="s")
        audit.defer(session, keys, at=now, actor="a", action="two", subject="s", details={"x": 1})
        # Nothing written yet: one insert for the whole transaction, at its end.
        assert session.exec(select(AuditHead.last_id)).one() == 0
        # A direct append writes what was deferred first, so the chain keeps the call order.
        entry = audit.append(session, keys, at=now, actor="a", action="three", subject="s")
        assert entry.id == 3
        audit.defer(session, keys, at=now, actor="a", action="four", subject="s")
    assert actions(runtime) == ["one", "two", "three", "four"]
    with runtime.db.read() as session:
        report = audit.verify(session, keys)
    assert report.intact and report.entries == 4


def test_deferred_entries_of_a_failed_transaction_are_never_written(runtime: Runtime) -> None:
    now = runtime.clock.now()
    with pytest.raises(RuntimeError), runtime.db.transaction() as session:
        audit.defer(session, runtime.audit_keys, at=now, actor="a", action="x", subject="s")
        raise RuntimeError("the change failed")
    with runtime.db.transaction() as session:
        audit.defer(session, runtime.audit_keys, at=now, actor="a", action="y", subject="s")
    assert actions(runtime) == ["y"]

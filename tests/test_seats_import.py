"""Seats import: existing holders recorded once, keys stored encrypted, bad files refused whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import col, select

from bot import delivery
from bot.cli import cli
from bot.errors import InputError
from bot.runtime import Runtime
from bot.seats import import_seats
from storage.models import Assignment, AuditEntry, LicenseKey, OutboxMessage
from tests import company
from tests.company import EMPLOYEE, IT1, MANAGER, NEWHIRE

SECRET = "IJ-IMPORTED-SECRET-KEY-7777"
GOOD = f"""product_id,slack_user_id,assigned_at,key
figma,{EMPLOYEE},2026-01-15T09:00:00Z,
intellij,{EMPLOYEE},2026-02-01T10:00:00+01:00,{SECRET}
slack-huddles,{MANAGER},2026-03-01,
"""


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    company.seed(runtime, with_keys=False)
    return runtime


def assignments(rt: Runtime) -> list[Assignment]:
    with rt.db.read() as s:
        return list(s.exec(select(Assignment).order_by(col(Assignment.id))).all())


def audits(rt: Runtime, action: str) -> list[AuditEntry]:
    with rt.db.read() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def test_import_records_holders_once_and_counts_toward_seats(rt: Runtime) -> None:
    result = import_seats(rt, GOOD, actor="UADMIN1")
    assert (result.added, result.already_held, result.keys) == (3, 0, 1)
    rows = assignments(rt)
    assert [(a.product_id, a.user_id, a.request_id) for a in rows] == [
        ("figma", EMPLOYEE, None),
        ("intellij", EMPLOYEE, None),
        ("slack-huddles", MANAGER, None),
    ]
    # Offsets are converted to UTC; a bare date is midnight UTC.
    assert rows[1].assigned_at.replace(tzinfo=UTC) == datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    with rt.db.read() as s:
        assert delivery.seats_taken(s, "figma") == 1

    again = import_seats(rt, GOOD, actor="UADMIN1")
    assert (again.added, again.already_held, again.keys) == (0, 3, 0)
    assert len(assignments(rt)) == 3
    with rt.db.read() as s:
        assert len(s.exec(select(LicenseKey)).all()) == 1
        # Importing notifies nobody: these people already have their seats.
        assert s.exec(select(OutboxMessage)).all() == []
    entries = audits(rt, "seats.imported")
    assert len(entries) == 2 and '"added":3' in entries[0].details.replace(" ", "")


def test_key_is_stored_encrypted_and_revealable_by_its_holder(rt: Runtime) -> None:
    import_seats(rt, GOOD, actor="UADMIN1")
    with rt.db.read() as s:
        for table in ("license_key", "assignment", "audit_entry", "outbox_message"):
            dump = str(s.connection().execute(text(f"SELECT * FROM {table}")).all())
            assert SECRET not in dump, table
    held = next(a for a in assignments(rt) if a.product_id == "intellij")
    assert held.id is not None and held.key_id is not None
    revealed = delivery.reveal_key(rt, actor=EMPLOYEE, assignment_id=held.id)
    assert revealed.key == SECRET and SECRET not in repr(revealed)


def test_a_key_already_in_the_pool_is_handed_over_not_duplicated(rt: Runtime) -> None:
    from bot.keys import import_keys

    import_keys(rt, "intellij", [SECRET], actor="test")
    result = import_seats(rt, GOOD, actor="UADMIN1")
    assert result.keys == 1
    with rt.db.read() as s:
        assert len(s.exec(select(LicenseKey)).all()) == 1


def test_bad_lines_are_refused_by_number_and_nothing_is_imported(rt: Runtime) -> None:
    bad = f"""product_id,slack_user_id,assigned_at,key
figma,{EMPLOYEE},2026-01-15T09:00:00Z,
nosuch,{EMPLOYEE},2026-01-15,
figma,UNOBODY01,2026-01-15,
slack-huddles,{NEWHIRE},yesterday,
slack-huddles,{IT1},2026-01-15,A-KEY-ON-A-SEAT
"""
    with pytest.raises(InputError) as err:
        import_seats(rt, bad, actor="UADMIN1")
    message = err.value.message
    assert "line 3: no product `nosuch`" in message
    assert "line 4: UNOBODY01 is not in the directory" in message
    assert "line 5: assigned_at 'yesterday' is not an ISO 8601 time" in message
    assert "line 6:" in message and "cannot carry a key" in message
    assert "A-KEY-ON-A-SEAT" not in message
    assert assignments(rt) == [] and audits(rt, "seats.imported") == []


def test_more_holders_than_seats_is_refused(rt: Runtime) -> None:
    too_many = f"""product_id,slack_user_id,assigned_at
figma,{EMPLOYEE},2026-01-15T09:00:00Z
figma,{MANAGER},2026-01-15T09:00:00Z
"""
    with pytest.raises(InputError, match=r"lines 2, 3: `figma` has 1 seats"):
        import_seats(rt, too_many, actor="UADMIN1")
    assert assignments(rt) == []


def test_cli_prints_counts(
    rt: Runtime, database_url: str, encryption_key: str, tmp_path: Path
) -> None:
    path = tmp_path / "seats.csv"
    path.write_text(GOOD)
    env = {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}
    out = CliRunner().invoke(cli, ["seats", "import", str(path)], env=env, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "Imported 3 seats (1 with a key); 0 already held" in out.output
    assert SECRET not in out.output
    bad = tmp_path / "bad.csv"
    bad.write_text("product_id,slack_user_id,assigned_at\nfigma,UNOBODY01,2026-01-01\n")
    out = CliRunner().invoke(cli, ["seats", "import", str(bad)], env=env)
    assert out.exit_code != 0 and "line 2" in out.output

"""Usage signals: CSV import through the CLI and the service, newest-wins, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import SQLModel, select

from bot import delivery
from bot.cli import cli
from bot.clock import ManualClock
from bot.directory import import_directory
from bot.errors import ConfigError
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from bot.usage import UsageImportError, UsageRow, parse_csv, record_usage
from storage.models import Assignment, AuditEntry, UsageSignal
from tests import company
from tests.company import EMPLOYEE, MANAGER, NEWHIRE


def signals(rt: Runtime) -> dict[tuple[str, str], tuple[datetime, str]]:
    with rt.db.read() as session:
        return {
            (s.product_id, s.user_id): (_utc(s.last_used_at), s.source)
            for s in session.exec(select(UsageSignal))
        }


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def snapshot(rt: Runtime) -> dict[str, set[tuple[str, ...]]]:
    with rt.db.read() as session:
        return {
            table.name: set(
                tuple(map(str, row)) for row in session.connection().execute(table.select())
            )
            for table in SQLModel.metadata.sorted_tables
        }


@pytest.fixture
def env(database_url: str, encryption_key: str) -> dict[str, str | None]:
    return {
        "DATABASE_URL": database_url,
        "LICENSEBOT_ENCRYPTION_KEYS": encryption_key,
        "SLACK_BOT_TOKEN": None,
        "SLACK_SIGNING_SECRET": None,
    }


@pytest.fixture
def seeded(runtime: Runtime) -> Runtime:
    company.seed(runtime)
    return runtime


def run_import(env: dict[str, str | None], path: Path, data: str | bytes) -> Result:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return CliRunner().invoke(cli, ["usage", "import", str(path)], env=env, catch_exceptions=False)


# --- the CLI (its clock is the real one: these times are safely in the past) --------------------


def test_csv_with_slack_ids_then_emails_keeps_the_newest(
    seeded: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    first = run_import(
        env,
        tmp_path / "a.csv",
        "product_id,slack_user_id,last_used_at\n"
        f"intellij,{EMPLOYEE},2026-10-01T10:00:00Z\n"
        f"figma,{MANAGER},2026-10-02T10:00:00+02:00\n",
    )
    assert first.exit_code == 0, first.output
    assert first.stdout == "Recorded 2 usage signals (0 older than what we knew)\n"

    # Email form (any case), BOM and CRLF; one newer, one older, one naive (read as UTC).
    second = run_import(
        env,
        tmp_path / "b.csv",
        "\ufeffEmail,product_id,last_used_at\r\n"
        "EMP@Example.com,intellij,2026-10-05 08:00\r\n"
        "mgr@example.com,figma,2026-09-01T00:00:00Z\r\n"
        "new@example.com,sublime,2026-10-03\r\n",
    )
    assert second.exit_code == 0, second.output
    assert second.stdout == "Recorded 2 usage signals (1 older than what we knew)\n"
    assert signals(seeded) == {
        ("intellij", EMPLOYEE): (datetime(2026, 10, 5, 8, 0, tzinfo=UTC), "csv"),
        ("figma", MANAGER): (datetime(2026, 10, 2, 8, 0, tzinfo=UTC), "csv"),
        ("sublime", NEWHIRE): (datetime(2026, 10, 3, tzinfo=UTC), "csv"),
    }
    with seeded.db.read() as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "usage.recorded"))
        details = [e.details for e in entries]
    assert (
        len(details) == 2 and '"ignored_older":1' in details[1] and '"source":"csv"' in details[1]
    )


def test_stdin_is_accepted(seeded: Runtime, env: dict[str, str | None]) -> None:
    result = CliRunner().invoke(
        cli,
        ["usage", "import", "-"],
        env=env,
        input=f"product_id,slack_user_id,last_used_at\nfigma,{EMPLOYEE},2026-10-01\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "Recorded 1 usage signals" in result.stdout


def test_any_bad_line_records_nothing_and_every_problem_has_its_line(
    seeded: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    run_import(
        env,
        tmp_path / "ok.csv",
        f"product_id,slack_user_id,last_used_at\nintellij,{EMPLOYEE},2026-10-01T00:00:00Z\n",
    )
    before = snapshot(seeded)
    result = run_import(
        env,
        tmp_path / "bad.csv",
        "product_id,slack_user_id,last_used_at\n"
        f"intellij,{EMPLOYEE},2026-10-20T00:00:00Z\n"  # fine, but must not be written
        f"photoshop,{EMPLOYEE},2026-10-01\n"  # unknown product
        "figma,UNOBODY01,2026-10-01\n"  # unknown user
        f"figma,{MANAGER},yesterday\n"  # not a time
        f"figma,{MANAGER},2099-01-01T00:00:00Z\n"  # far future
        f"figma,{MANAGER}\n",  # a field short
    )
    assert result.exit_code == 1
    err = result.stderr
    assert err.startswith("licensebot: ") and err.count("\n") == 1
    assert "5 problems, nothing was recorded" in err
    assert "line 3: no product 'photoshop'" in err
    assert "line 4: user UNOBODY01 is not in the directory" in err
    assert "line 5: last_used_at 'yesterday' is not an ISO 8601" in err
    assert "line 6: last_used_at 2099-01-01T00:00:00+00:00 is more than a day in the future" in err
    assert "line 7: expected 3 fields, found 2" in err
    assert snapshot(seeded) == before


def test_header_problems_are_refused(
    seeded: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    for text, expected in [
        ("", "is empty"),
        (f"intellij,{EMPLOYEE},2026-10-01\n", "unknown column(s)"),
        ("product_id,slack_user_id,email,last_used_at\n", "the columns must be"),
        ("product_id,last_used_at\n", "the columns must be"),
        ("product_id,email,email,last_used_at\n", "repeated: email"),
    ]:
        result = run_import(env, tmp_path / "h.csv", text)
        assert result.exit_code == 1 and expected in result.stderr, (text, result.stderr)
    assert signals(seeded) == {}


# --- the service -----------------------------------------------------------------------------


def rows(*items: tuple[str, str, str]) -> list[UsageRow]:
    return [UsageRow(f"item {i}", *item) for i, item in enumerate(items)]


def test_an_older_signal_never_moves_last_use_back(seeded: Runtime, clock: ManualClock) -> None:
    now = clock.now()
    newer, older = (now - timedelta(days=1)).isoformat(), (now - timedelta(days=9)).isoformat()
    first = record_usage(seeded, rows(("intellij", EMPLOYEE, newer)), source="api", actor="t")
    assert (first.recorded, first.ignored_older) == (1, 0)
    again = record_usage(
        seeded,
        rows(("intellij", EMPLOYEE, older), ("intellij", EMPLOYEE, newer)),
        source="csv",
        actor="t",
    )
    assert (again.recorded, again.ignored_older) == (0, 2)
    # Source stays that of the newest signal.
    assert signals(seeded) == {("intellij", EMPLOYEE): (now - timedelta(days=1), "api")}


def test_duplicates_in_one_batch_keep_their_maximum(seeded: Runtime, clock: ManualClock) -> None:
    now = clock.now()
    result = record_usage(
        seeded,
        rows(
            ("figma", EMPLOYEE, (now - timedelta(days=3)).isoformat()),
            ("figma", "emp@example.com", (now - timedelta(hours=1)).isoformat()),
            ("figma", EMPLOYEE, (now - timedelta(days=2)).isoformat()),
        ),
        source="csv",
        actor="t",
    )
    assert (result.recorded, result.ignored_older) == (1, 2)
    assert signals(seeded)[("figma", EMPLOYEE)][0] == now - timedelta(hours=1)


def test_up_to_a_day_ahead_is_accepted_and_more_is_not(seeded: Runtime, clock: ManualClock) -> None:
    now = clock.now()
    ok = (now + timedelta(hours=23)).isoformat()
    assert record_usage(seeded, rows(("figma", MANAGER, ok)), source="csv", actor="t").recorded == 1
    with pytest.raises(UsageImportError, match=r"item 0: last_used_at .* more than a day"):
        record_usage(
            seeded,
            rows(("figma", MANAGER, (now + timedelta(days=1, minutes=1)).isoformat())),
            source="csv",
            actor="t",
        )


def test_problem_lists_are_capped_at_twenty(seeded: Runtime) -> None:
    bad = rows(*[("nope", EMPLOYEE, "2026-10-01")] * 25)
    with pytest.raises(UsageImportError) as caught:
        record_usage(seeded, bad, source="csv", actor="t", label="big.csv")
    assert caught.value.message.startswith("big.csv: 25 problems, nothing was recorded")
    assert caught.value.message.endswith("; and 5 more")
    assert len(caught.value.problems) == 25


def test_an_email_shared_by_two_people_is_ambiguous(seeded: Runtime) -> None:
    company_dir = "slack_user_id,email,name,manager_slack_user_id,department\n"
    import_directory(seeded, company_dir + "UTWIN0001,EMP@example.com,Twin,,\n", actor="t")
    with pytest.raises(UsageImportError, match="belongs to 2 people"):
        record_usage(
            seeded, rows(("figma", "emp@example.com", "2026-10-01")), source="csv", actor="t"
        )


def test_a_big_file_is_recorded_in_batches(seeded: Runtime, clock: ManualClock) -> None:
    header = "slack_user_id,email,name,manager_slack_user_id,department\n"
    people = "".join(f"UBULK{i:05d},bulk{i}@example.com,Bulk {i},,\n" for i in range(2500))
    import_directory(seeded, header + people, actor="t")
    at = (clock.now() - timedelta(days=1)).isoformat()
    text = "product_id,email,last_used_at\n" + "".join(
        f"slack-huddles,BULK{i}@example.com,{at}\n" for i in range(2500)
    )
    result = record_usage(seeded, parse_csv(text, "bulk.csv"), source="csv", actor="t")
    assert (result.recorded, result.ignored_older) == (2500, 0)
    again = record_usage(seeded, parse_csv(text, "bulk.csv"), source="csv", actor="t")
    assert (again.recorded, again.ignored_older) == (0, 2500)
    assert len(signals(seeded)) == 2500


def test_revealing_a_key_records_a_use(seeded: Runtime, clock: ManualClock) -> None:
    with seeded.db.transaction() as session:
        key_id = delivery.free_key_id(session, "sublime")
        held = Assignment(
            product_id="sublime", user_id=EMPLOYEE, key_id=key_id, assigned_at=clock.now()
        )
        session.add(held)
        session.flush()
        assignment_id = held.id
    assert assignment_id is not None
    clock.advance(timedelta(days=3))
    delivery.reveal_key(seeded, actor=EMPLOYEE, assignment_id=assignment_id)
    assert signals(seeded) == {("sublime", EMPLOYEE): (clock.now(), "reveal")}
    # A reveal with an older clock reading (another process) never moves it back.
    earlier = clock.now()
    clock.advance(timedelta(days=-1))
    delivery.reveal_key(seeded, actor=EMPLOYEE, assignment_id=assignment_id)
    assert signals(seeded)[("sublime", EMPLOYEE)][0] == earlier


def test_control_characters_are_refused_with_their_line(
    seeded: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    result = run_import(
        env,
        tmp_path / "c.csv",
        f"product_id,slack_user_id,last_used_at\nfig\x00ma,{EMPLOYEE},2026-10-01\n",
    )
    assert result.exit_code == 1
    assert "line 2: product_id contains a control character (U+0000)" in result.stderr
    assert signals(seeded) == {}


# --- the setting -----------------------------------------------------------------------------


def test_api_token_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LICENSEBOT_API_TOKEN", raising=False)
    assert Settings(_env_file=None).api_token is None
    monkeypatch.setenv("LICENSEBOT_API_TOKEN", "  ")
    assert Settings(_env_file=None).api_token is None
    monkeypatch.setenv("LICENSEBOT_API_TOKEN", "x" * 30)
    assert Settings(_env_file=None).api_token == "x" * 30
    monkeypatch.setenv("LICENSEBOT_API_TOKEN", "short")
    with pytest.raises(ConfigError, match=r"LICENSEBOT_API_TOKEN: .*at least 24 characters"):
        load_settings()

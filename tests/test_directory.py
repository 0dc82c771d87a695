"""Directory import: validation of every row before anything is written, then an upsert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlmodel import SQLModel, select

from bot.cli import cli
from bot.directory import import_directory
from bot.errors import DirectoryError
from bot.runtime import Runtime
from storage.models import AuditEntry, Person

HEADER = "slack_user_id,email,name,manager_slack_user_id,department"
PEOPLE = f"""{HEADER}
UMGR00001,mgr@example.com,Maria Manager,,Engineering
UEMP00001,emp@example.com,Erik Employee,UMGR00001,Engineering
"""


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    with rt.db.read() as session:
        return {
            table.name: sorted(
                tuple(map(str, row)) for row in session.connection().execute(table.select())
            )
            for table in SQLModel.metadata.sorted_tables
        }


def people(rt: Runtime) -> dict[str, Person]:
    with rt.db.read() as session:
        return {p.slack_user_id: p for p in session.exec(select(Person))}


@pytest.fixture
def env(database_url: str, encryption_key: str) -> dict[str, str | None]:
    return {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}


def run_import(env: dict[str, str | None], path: Path, data: str | bytes) -> Result:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return CliRunner().invoke(
        cli, ["directory", "import", str(path)], env=env, catch_exceptions=False
    )


def test_import_adds_then_updates_and_reruns_are_idempotent(
    runtime: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    csv_file = tmp_path / "people.csv"

    first = run_import(env, csv_file, PEOPLE)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("2 added, 0 updated")
    stored = people(runtime)
    assert stored["UEMP00001"].manager_slack_user_id == "UMGR00001"
    assert stored["UMGR00001"].manager_slack_user_id is None
    assert stored["UEMP00001"].department == "Engineering"

    before = snapshot(runtime)["person"]
    again = run_import(env, csv_file, PEOPLE)
    assert again.stdout.startswith("0 added, 0 updated")
    assert snapshot(runtime)["person"] == before

    moved = run_import(
        env, csv_file, PEOPLE.replace("Erik Employee,UMGR00001,Engineering", "Erik Employee,,Sales")
    )
    assert moved.stdout.startswith("0 added, 1 updated")
    assert people(runtime)["UEMP00001"].department == "Sales"
    assert people(runtime)["UEMP00001"].manager_slack_user_id is None

    with runtime.db.read() as session:
        actions = session.exec(select(AuditEntry.action)).all()
    assert actions == ["directory.imported"] * 3


def test_people_missing_from_a_later_file_are_kept(runtime: Runtime) -> None:
    import_directory(runtime, PEOPLE, actor="test")
    import_directory(runtime, f"{HEADER}\nUNEW00001,new@example.com,Nina,UMGR00001,\n", actor="t")
    assert set(people(runtime)) == {"UMGR00001", "UEMP00001", "UNEW00001"}


def test_bom_crlf_any_column_order_and_quoted_fields(
    runtime: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    data = (
        "\ufeffname,department,slack_user_id,email,manager_slack_user_id\r\n"
        '"Manager, Maria",Eng,UMGR00001,mgr@example.com,\r\n'
        "Erik,Eng,UEMP00001,emp@example.com,UMGR00001\r\n"
        "\r\n"
    ).encode()

    result = run_import(env, tmp_path / "excel.csv", data)

    assert result.exit_code == 0, result.output
    stored = people(runtime)
    assert stored["UMGR00001"].name == "Manager, Maria"
    assert stored["UEMP00001"].manager_slack_user_id == "UMGR00001"
    assert all("\r" not in (p.manager_slack_user_id or "") for p in stored.values())


def test_a_manager_already_in_the_directory_is_accepted(runtime: Runtime) -> None:
    import_directory(runtime, PEOPLE, actor="test")
    result = import_directory(
        runtime, f"{HEADER}\nUNEW00001,new@example.com,Nina,UMGR00001,Eng\n", actor="test"
    )
    assert (result.added, result.updated) == (1, 0)


def test_bad_rows_are_all_listed_by_line_and_nothing_is_written(
    runtime: Runtime, env: dict[str, str | None], tmp_path: Path
) -> None:
    import_directory(runtime, PEOPLE, actor="test")
    before = snapshot(runtime)
    data = f"""{HEADER}
UNEW00001,new@example.com,Nina,UMGR00001,Eng
bob,bob@example.com,Bob,,Eng
UX0000001,not-an-email,X,,Eng
UEMP00001,emp@example.com,Erik,UEMP00001,Eng
UNEW00001,again@example.com,Nina Again,,Eng
UY0000001,y@example.com,Y,UGHOST001,Eng
UZ0000001,z@example.com,,,Eng
UW0000001,w@example.com,W,,Eng,extra
"""

    result = run_import(env, tmp_path / "bad.csv", data)

    assert result.exit_code == 1
    message = result.stderr
    assert message.count("\n") == 1 and message.startswith("licensebot: ")
    assert "nothing was imported" in message
    for expected in (
        "line 3: slack_user_id 'bob' is not a Slack user ID",
        "line 4: email 'not-an-email' is not an email address",
        "line 5: UEMP00001 cannot be their own manager",
        "line 6: UNEW00001 is already on line 2",
        "line 8: name is empty",
        "line 9: expected 5 fields, found 6",
    ):
        assert expected in message
    assert snapshot(runtime) == before


def test_an_unknown_manager_is_refused_with_its_line(runtime: Runtime) -> None:
    before = snapshot(runtime)
    with pytest.raises(DirectoryError) as caught:
        import_directory(
            runtime,
            f"{HEADER}\nUMGR00001,m@example.com,M,,\nUEMP00001,e@example.com,E,UGHOST001,\n",
            actor="test",
        )
    assert "line 3: manager UGHOST001 is neither in this file nor in the directory" in (
        caught.value.message
    )
    assert snapshot(runtime) == before


def test_long_error_lists_are_capped(runtime: Runtime) -> None:
    rows = "".join(f"bad{i},x@example.com,X,,\n" for i in range(30))
    with pytest.raises(DirectoryError) as caught:
        import_directory(runtime, f"{HEADER}\n{rows}", actor="test")
    assert caught.value.message.startswith("directory CSV: 30 problems")
    assert "line 21:" in caught.value.message and "line 22:" not in caught.value.message
    assert caught.value.message.endswith("; and 10 more")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty; it needs a header line: slack_user_id,email,name"),
        (b"  \r\n\r\n", "is empty"),
        (f"{HEADER},team\nU1A,a@b.c,A,,,x\n".encode(), "line 1: unknown column(s) 'team'"),
        (b"slack_user_id,email,name\nU1A,a@b.c,A\n", "missing column(s): manager_slack_user_id"),
        (b"UMGR00001,mgr@example.com,Maria,,Eng\n", "unknown column(s) 'umgr00001'"),
        (f"{HEADER}\n".encode(), "has a header but no people"),
        (f"{HEADER}\nUA00001,caf\xe9@x.com,A,,\n".encode("latin-1"), "line 2 is not UTF-8 text"),
    ],
    ids=["empty", "blank", "extra-column", "missing-column", "no-header", "no-rows", "latin-1"],
)
def test_unusable_files_get_one_clear_line(
    runtime: Runtime, env: dict[str, str | None], tmp_path: Path, data: bytes, expected: str
) -> None:
    before = snapshot(runtime)

    result = run_import(env, tmp_path / "people.csv", data)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"licensebot: {tmp_path / 'people.csv'}")
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert snapshot(runtime) == before

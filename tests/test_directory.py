"""Directory import: validation of every row before anything is written, then an upsert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.exc import DataError
from sqlmodel import SQLModel, select

from bot.cli import cli
from bot.directory import MAX_LENGTH, import_directory
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


# --- what the database could not hold: refused with the line, nothing written ------------------


def _refused(rt: Runtime, text: str) -> str:
    """The message of the DirectoryError ``text`` raises, after checking nothing was written."""
    before = snapshot(rt)
    # pytest.raises lets anything else through: a DataError here fails the test.
    with pytest.raises(DirectoryError) as caught:
        import_directory(rt, text, actor="test")
    assert snapshot(rt) == before
    return caught.value.message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            "UFZ00002,b@example.com,B\x00b,,Eng",
            "line 3: name contains a control character (U+0000) at character 2; remove it",
        ),
        (
            "UFZ00002,b\x1b@example.com,B,,Eng",
            "line 3: email contains a control character (U+001B)",
        ),
        ("UFZ00002,b@example.com,B,,En\x7fg", "line 3: department contains a control character"),
        (
            "UFZ00002,b@example.com,B\x85b,,Eng",
            "line 3: name contains a control character (U+0085)",
        ),
        ("UFZ00002,b@example.com,B\tb,,Eng", "line 3: name contains a control character (U+0009)"),
        ("UFZ\x0000002,b@example.com,B,,Eng", "line 3: slack_user_id contains a control character"),
        (
            "UFZ00002,b@example.com,B,UMGR\x9b0001,Eng",
            "line 3: manager_slack_user_id contains a control character (U+009B)",
        ),
        ("UFZ00002,b@example.com,B\udc80b,,Eng", "line 3: name contains a lone surrogate (U+DC80)"),
    ],
    ids=["nul", "escape", "del", "c1-nel", "tab", "nul-in-id", "c1-in-manager", "surrogate"],
)
def test_control_characters_are_refused_with_their_line(
    runtime: Runtime, row: str, expected: str
) -> None:
    import_directory(runtime, PEOPLE, actor="test")

    message = _refused(runtime, f"{HEADER}\nUFZ00001,a@example.com,Ann,,Eng\n{row}\n")

    assert expected in message
    assert message.startswith("directory CSV: 1 problem, nothing was imported: line 3: ")


def test_a_row_spanning_lines_is_reported_where_it_starts_and_later_lines_stay_right(
    runtime: Runtime,
) -> None:
    text = (
        f"{HEADER}\n"
        'UFZ00001,a@example.com,"Ann\nSmith",,Eng\n'  # lines 2 and 3: a newline in the name
        "UFZ00002,not-an-email,Bob,,Eng\n"  # line 4
    )

    message = _refused(runtime, text)

    assert "line 2: name contains a control character (U+000A) at character 4" in message
    assert "line 4: email 'not-an-email' is not an email address" in message


@pytest.mark.parametrize(
    ("column", "limit"),
    [
        ("email", MAX_LENGTH["email"]),
        ("name", MAX_LENGTH["name"]),
        ("department", MAX_LENGTH["department"]),
    ],
)
def test_text_longer_than_its_limit_is_refused_and_the_limit_itself_is_stored(
    runtime: Runtime, column: str, limit: int
) -> None:
    def row(length: int) -> str:
        fields = {"email": "b@example.com", "name": "B", "department": "Eng"}
        domain = "@example.com" if column == "email" else ""
        fields[column] = "b" * (length - len(domain)) + domain
        return f"UFZ00002,{fields['email']},{fields['name']},,{fields['department']}"

    message = _refused(runtime, f"{HEADER}\n{row(limit + 1)}\n")

    assert f"line 2: {column} is {limit + 1} characters long; at most {limit} are allowed" in (
        message
    )
    import_directory(runtime, f"{HEADER}\n{row(limit)}\n", actor="test")
    assert len(getattr(people(runtime)["UFZ00002"], column)) == limit


def test_slack_user_ids_fit_their_32_character_columns(runtime: Runtime) -> None:
    longest, too_long = "U" + "A" * 31, "U" + "A" * 32

    message = _refused(
        runtime,
        f"{HEADER}\n{too_long},a@example.com,A,,\nUFZ00002,b@example.com,B,{too_long},\n",
    )

    assert f"line 2: slack_user_id '{too_long}' is not a Slack user ID (U or W, then 2 to 31" in (
        message
    )
    assert f"line 3: manager_slack_user_id '{too_long}' is not a Slack user ID" in message
    import_directory(
        runtime,
        f"{HEADER}\n{longest},a@example.com,A,,\nUFZ00002,b@example.com,B,{longest},\n",
        actor="test",
    )
    assert people(runtime)["UFZ00002"].manager_slack_user_id == longest


def test_a_huge_value_is_quoted_cut_short(runtime: Runtime) -> None:
    message = _refused(runtime, f"{HEADER}\nU{'X' * 5000},{'e' * 5000},{'n' * 5000},,\n")

    assert "line 2: slack_user_id 'UXXXX" in message
    assert "line 2: email is 5000 characters long" in message
    assert "line 2: name is 5000 characters long" in message
    assert len(message) < 500


# Each would reach the database without the checks: PostgreSQL raises a DataError for a NUL and
# for more than 32 characters in a user-ID column; psycopg cannot encode a lone surrogate.
UNSTORABLE = [
    pytest.param("UFZ00002,b@example.com,B\x00b,,Eng", id="nul-in-name"),
    pytest.param("UFZ00002,b@example.com,B,,Eng\x00", id="nul-at-the-end"),
    pytest.param("UFZ00002\x00,b@example.com,B,,Eng", id="nul-in-id"),
    pytest.param("UFZ00002,b@exa\x00mple.com,B,,Eng", id="nul-in-email"),
    pytest.param("UFZ00002,b@example.com,B\ud800,,Eng", id="surrogate"),
    pytest.param(f"U{'A' * 40},b@example.com,B,,Eng", id="id-beyond-32"),
    pytest.param(f"UFZ00002,b@example.com,B,U{'A' * 40},Eng", id="manager-beyond-32"),
    pytest.param(f"UFZ00002,b@example.com,{'B' * 100_000},,Eng", id="name-100k"),
]


@pytest.mark.parametrize("row", UNSTORABLE)
def test_values_the_database_cannot_hold_are_refused_with_their_line(
    runtime: Runtime, row: str
) -> None:
    import_directory(runtime, PEOPLE, actor="test")

    message = _refused(runtime, f"{HEADER}\nUFZ00001,a@example.com,Ann,,Eng\n{row}\n")

    assert "line 3: " in message and "line 2" not in message


def test_postgresql_would_raise_a_data_error_for_them(runtime: Runtime, database_url: str) -> None:
    """The premise of the test above: these values do fail in the database, without the checks."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite stores NUL and long strings; the premise is PostgreSQL's")
    now = runtime.clock.now()
    for person in (
        Person(slack_user_id="UFZ00002", email="b@example.com", name="B\x00b", updated_at=now),
        Person(slack_user_id="U" + "A" * 40, email="b@example.com", name="B", updated_at=now),
    ):
        with pytest.raises(DataError), runtime.db.transaction() as session:
            session.add(person)

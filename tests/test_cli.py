"""The ``licensebot`` command: the console script, settings, errors, roles and the audit log."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlmodel import select

from bot import audit_export
from bot.cli import actor, cli
from bot.runtime import Runtime
from storage import audit
from storage.db import alembic_config
from storage.models import AuditEntry

CATALOG = """
groups:
  it-team: [U0IT00001]
products:
  - {id: intellij, name: IntelliJ IDEA, delivery: key, seats: 3, approval: [manager, it-team]}
"""
# Settings also read a .env file; the tests must not pick up a developer's Slack credentials.
NO_SLACK = {"SLACK_BOT_TOKEN": None, "SLACK_SIGNING_SECRET": None, "LICENSEBOT_ADMINS": None}


@pytest.fixture
def env(database_url: str, encryption_key: str) -> dict[str, str | None]:
    return {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key, **NO_SLACK}


def invoke(env: dict[str, str | None], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output + result.stderr
    assert result.stderr.startswith("licensebot: ")
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# --- the console script, as an admin runs it --------------------------------------------------


def script() -> str:
    path = Path(sys.executable).parent / "licensebot"
    assert path.exists(), "run `pip install -e .[test]` to install the licensebot script"
    return str(path)


def test_console_script_migrates_a_fresh_database_and_fails_in_one_line(
    database_url: str, encryption_key: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in NO_SLACK and not k.startswith("SLACK_")}
    env |= {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": encryption_key}
    good = tmp_path / "catalog.yml"
    good.write_text(CATALOG, encoding="utf-8")
    bad = tmp_path / "bad.yml"
    bad.write_text(CATALOG.replace("it-team]}", "it-tem]}"), encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script(), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    loaded = run("catalog", "load", str(good))
    refused = run("catalog", "load", str(bad))
    upgraded = run("db", "upgrade")

    assert loaded.returncode == 0, loaded.stderr
    assert "1 added" in loaded.stdout
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith(
        f"licensebot: {bad}: line 5, products[0] (intellij): approval step"
    )
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "is already at the newest revision" in upgraded.stdout


def test_db_upgrade_reports_what_it_did(env: dict[str, str | None]) -> None:
    first = invoke(env, "db", "upgrade")
    second = invoke(env, "db", "upgrade")

    assert first.exit_code == 0
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"upgraded from an empty schema to {head}" in first.stdout
    assert f"is already at the newest revision ({head})" in second.stdout


def test_db_upgrade_hides_the_database_password() -> None:
    url = "postgresql+psycopg://admin:hunter2@127.0.0.1:1/none"
    result = invoke({"DATABASE_URL": url, "LICENSEBOT_ENCRYPTION_KEYS": None}, "db", "upgrade")

    assert "Cannot open the database at DATABASE_URL" in one_error_line(result)
    assert "hunter2" not in result.stderr


# --- settings ---------------------------------------------------------------------------------


def test_without_encryption_keys_a_key_file_is_made_once_beside_the_database(
    tmp_path: Path,
) -> None:
    # Always SQLite: the key file goes beside the database file.
    db_url = f"sqlite:///{tmp_path / 'data' / 'licensebot.db'}"
    (tmp_path / "data").mkdir()
    env = {"DATABASE_URL": db_url, "LICENSEBOT_ENCRYPTION_KEYS": None, **NO_SLACK}
    catalog_file = tmp_path / "catalog.yml"
    catalog_file.write_text(CATALOG, encoding="utf-8")

    first = invoke(env, "catalog", "load", str(catalog_file))
    imported = invoke(env, "keys", "import", "intellij", "-", input="KEY-ONE\n")
    again = invoke(env, "keys", "import", "intellij", "-", input="KEY-ONE\n")

    key_file = tmp_path / "data" / "licensebot.key"
    assert first.exit_code == 0, first.output
    assert f"created encryption key file {key_file} (mode 0600)" in first.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "created encryption key file" not in imported.stderr + again.stderr
    # The same key file decrypts what the previous run stored: the duplicate is recognised.
    assert again.stdout == "Added 0 keys to intellij (1 duplicates skipped).\n"


def test_bad_settings_are_one_line(env: dict[str, str | None]) -> None:
    bad_key = invoke({**env, "LICENSEBOT_ENCRYPTION_KEYS": "not-a-key"}, "roles", "list")
    bad_number = invoke({**env, "LICENSEBOT_REVEAL_SECONDS": "0"}, "roles", "list")

    assert "LICENSEBOT_ENCRYPTION_KEYS: encryption key #1 is not a valid Fernet key" in (
        one_error_line(bad_key)
    )
    assert "not-a-key" not in bad_key.stderr
    assert "LICENSEBOT_REVEAL_SECONDS" in one_error_line(bad_number)


def test_serve_without_slack_credentials_says_what_to_set(env: dict[str, str | None]) -> None:
    result = invoke(env, "serve", "--port", "3999")

    assert "Set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET" in one_error_line(result)


def test_keys_generate_prints_a_usable_encryption_key() -> None:
    result = invoke({}, "keys", "generate")

    Fernet(result.stdout.strip().encode())


# --- roles ------------------------------------------------------------------------------------


def test_roles_grant_list_revoke(runtime: Runtime, env: dict[str, str | None]) -> None:
    env = {**env, "LICENSEBOT_ADMINS": "UADMIN001"}

    granted = invoke(env, "roles", "grant", "UAUD00001", "auditor")
    again = invoke(env, "roles", "grant", "UAUD00001", "auditor")
    listed = invoke(env, "roles", "list")
    revoked = invoke(env, "roles", "revoke", "UAUD00001", "auditor")
    env_admin = invoke(env, "roles", "revoke", "UADMIN001", "it_admin")
    empty = invoke({**env, "LICENSEBOT_ADMINS": ""}, "roles", "list")

    assert granted.stdout == "Granted auditor to UAUD00001.\n"
    assert again.stdout == "UAUD00001 already has auditor; nothing changed.\n"
    assert listed.stdout.splitlines() == [
        "UAUD00001\tauditor\tgranted",
        "UADMIN001\tit_admin\tLICENSEBOT_ADMINS",
    ]
    assert revoked.stdout == "Revoked auditor from UAUD00001.\n"
    assert "still an it_admin through LICENSEBOT_ADMINS" in env_admin.stdout
    assert empty.stdout.startswith("No one holds a role.")
    with runtime.db.read() as session:
        entries = session.exec(select(AuditEntry)).all()
    assert [(e.action, e.subject, e.actor) for e in entries] == [
        ("role.granted", "UAUD00001", actor()),
        ("role.revoked", "UAUD00001", actor()),
    ]


def test_roles_refuse_unknown_roles_and_user_ids(env: dict[str, str | None]) -> None:
    role = invoke(env, "roles", "grant", "UAUD00001", "boss")
    user = invoke(env, "roles", "grant", "alice", "auditor")

    assert "Unknown role `boss`. Roles are: it_admin, auditor." in one_error_line(role)
    assert "'alice' is not a Slack user ID" in one_error_line(user)


def test_actor_names_the_os_user() -> None:
    assert actor() == "cli" or actor().startswith("cli:")
    assert len(actor()) <= 64


# --- audit ------------------------------------------------------------------------------------


@pytest.fixture
def history(runtime: Runtime) -> Runtime:
    with runtime.db.transaction() as session:
        for i in range(5):
            audit.append(
                session,
                runtime.audit_keys,
                at=runtime.clock.now(),
                actor="cli:test",
                action="test.event",
                subject=f"thing:{i}",
                details={"n": i, "text": 'ünïcode, "quoted"'},
            )
    return runtime


def _rehash(record: dict[str, object], details: str) -> str:
    return audit.entry_hash(
        prev_hash=str(record["prev_hash"]),
        seq=int(str(record["id"])),
        at=datetime.fromisoformat(str(record["at"])),
        actor=str(record["actor"]),
        action=str(record["action"]),
        subject=str(record["subject"]),
        details=details,
    )


def test_audit_export_jsonl_is_complete_ordered_and_rechecks(
    history: Runtime, env: dict[str, str | None]
) -> None:
    result = invoke(env, "audit", "export")

    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == [1, 2, 3, 4, 5]
    assert list(records[0]) == list(audit_export.FIELDS)
    assert records[2]["details"] == {"n": 2, "text": 'ünïcode, "quoted"'}
    assert records[0]["at"] == "2026-11-02T09:00:00+00:00"
    # Everything needed to re-check the chain outside licensebot is in the export.
    previous = audit.GENESIS
    for record in records:
        assert record["prev_hash"] == previous
        assert record["hash"] == _rehash(record, audit.canonical(record["details"]))
        previous = record["hash"]


def test_audit_export_csv(history: Runtime, env: dict[str, str | None]) -> None:
    result = invoke(env, "audit", "export", "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert json.loads(rows[4]["details"]) == {"n": 4, "text": 'ünïcode, "quoted"'}
    assert all(r["hash"] == _rehash(dict(r), r["details"]) for r in rows)


def test_audit_export_streams_in_batches(history: Runtime) -> None:
    out = io.StringIO()

    written = audit_export.export(history, out, fmt="jsonl", batch=2)

    assert written == 5
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == [1, 2, 3, 4, 5]


def test_audit_export_of_an_empty_log(env: dict[str, str | None]) -> None:
    assert invoke(env, "audit", "export").stdout == ""
    assert invoke(env, "audit", "export", "--format", "csv").stdout.splitlines() == [
        ",".join(audit_export.FIELDS)
    ]


def test_audit_verify_detects_tampering(history: Runtime, env: dict[str, str | None]) -> None:
    intact = invoke(env, "audit", "verify")
    assert intact.stdout.startswith("5 entries, chain intact, head ")

    with history.db.transaction() as session:
        entry = session.get(AuditEntry, 3)
        assert entry is not None
        entry.subject = "thing:forged"
        session.add(entry)

    broken = invoke(env, "audit", "verify")
    assert "does not verify: entry 3: content edited" in one_error_line(broken)

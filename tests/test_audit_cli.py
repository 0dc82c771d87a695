"""``licensebot audit verify`` and ``licensebot audit export``, as an admin or auditor runs them."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlmodel import col, select

from bot.runtime import Runtime
from bot.settings import Settings
from storage import audit
from storage.audit import AuditSigner
from storage.models import AuditEntry
from tests.conftest import START

NO_SLACK = {"SLACK_BOT_TOKEN": None, "SLACK_SIGNING_SECRET": None, "LICENSEBOT_ADMINS": None}
OLD_KEY = "old-audit-key-" + "o" * 30


@pytest.fixture
def env(database_url: str, encryption_key: str, audit_key: str) -> dict[str, str | None]:
    return {
        "DATABASE_URL": database_url,
        "LICENSEBOT_ENCRYPTION_KEYS": encryption_key,
        "LICENSEBOT_AUDIT_KEYS": audit_key,
        **NO_SLACK,
    }


def invoke(env: dict[str, str | None], *args: str) -> Result:
    from bot.cli import cli

    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def error_line(result: Result) -> str:
    assert result.exit_code != 0
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("licensebot: ") and result.stderr.count("\n") == 1
    return result.stderr


@pytest.fixture
def history(runtime: Runtime) -> Runtime:
    """Six entries, one an hour from START: actors, products and a request for someone."""
    plan = [
        ("UEMP00001", "request.created", "request:1", {"product": "intellij", "for": "UEMP00001"}),
        ("UMGR00001", "step.approved", "request:1", {"step": 1}),
        ("licensebot", "key.assigned", "user:UEMP00001", {"product": "intellij", "request": 1}),
        ("UEMP00002", "request.created", "request:2", {"product": "figma", "for": "UEMP00002"}),
        ("cli:root", "role.granted", "UAUD00001", {"role": "auditor"}),
        ("UMGR00001", "request.denied", "request:2", {"product": "figma", "reason": "no"}),
    ]
    for hour, (actor, action, subject, details) in enumerate(plan):
        with runtime.db.transaction() as session:
            audit.append(
                session,
                runtime.audit_keys,
                at=START + timedelta(hours=hour),
                actor=actor,
                action=action,
                subject=subject,
                details=details,
            )
    return runtime


def sql(rt: Runtime, statement: str, **params: object) -> None:
    with rt.db.engine.begin() as conn:
        conn.execute(text(statement), params)


# --- verify -----------------------------------------------------------------------------------


def test_verify_prints_one_line_and_exits_0_when_intact(
    history: Runtime, env: dict[str, str | None]
) -> None:
    result = invoke(env, "audit", "verify")

    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"6 entries, chain intact, head [0-9a-f]{64}\n", result.stdout)
    with history.db.read() as session:
        assert result.stdout.split()[-1] == audit.verify(session, history.audit_keys).head


def test_verify_of_an_empty_log(env: dict[str, str | None]) -> None:
    result = invoke(env, "audit", "verify")
    assert result.stdout == f"0 entries, chain intact, head {audit.GENESIS}\n"


def _recompute_from(rt: Runtime, first: int) -> None:
    """What anyone can do without the audit key: recompute every sha256 from ``first`` on."""
    with rt.db.read() as session:
        entries = list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all())
    prev = entries[first - 2].hash
    for entry in entries[first - 1 :]:
        digest = audit.entry_hash(
            prev_hash=prev,
            seq=entry.id or 0,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            details=entry.details,
        )
        sql(
            rt,
            "UPDATE audit_entry SET prev_hash = :p, hash = :h WHERE id = :i",
            p=prev,
            h=digest,
            i=entry.id,
        )
        prev = digest
    sql(rt, "UPDATE audit_head SET hash = :h", h=prev)


TAMPERING = {
    "edited": (
        ["UPDATE audit_entry SET actor = 'UEVIL0001' WHERE id = 2"],
        "entry 2: content edited",
    ),
    "deleted": (["DELETE FROM audit_entry WHERE id = 4"], "entry 4 is missing"),
    "deleted-newest": (["DELETE FROM audit_entry WHERE id = 6"], "entry 6 is missing"),
    "reordered": (
        [
            "UPDATE audit_entry SET id = 100 WHERE id = 3",
            "UPDATE audit_entry SET id = 3 WHERE id = 4",
            "UPDATE audit_entry SET id = 4 WHERE id = 100",
        ],
        "entry 3 is out of order",
    ),
    "inserted": (
        [
            "INSERT INTO audit_entry (id, at, actor, action, subject, details, prev_hash, hash) "
            "SELECT 7, at, 'UEVIL0001', action, subject, details, hash, hash "
            "FROM audit_entry WHERE id = 6"
        ],
        "entry 7 was inserted",
    ),
}


@pytest.mark.parametrize("kind", TAMPERING)
def test_verify_names_the_first_bad_entry_and_what_is_wrong(
    history: Runtime, env: dict[str, str | None], kind: str
) -> None:
    statements, expected = TAMPERING[kind]
    for statement in statements:
        sql(history, statement)

    assert f"licensebot: The audit log does not verify: {expected}" in error_line(
        invoke(env, "audit", "verify")
    )


def test_verify_catches_an_edit_even_with_every_sha256_recomputed(
    history: Runtime, env: dict[str, str | None]
) -> None:
    sql(history, "UPDATE audit_entry SET actor = 'UEVIL0001' WHERE id = 2")
    _recompute_from(history, 2)

    line = error_line(invoke(env, "audit", "verify"))

    assert "entry 2: signature invalid" in line


def test_rotating_the_audit_key_keeps_old_entries_verifiable(
    runtime: Runtime, env: dict[str, str | None], audit_key: str
) -> None:
    with runtime.db.transaction() as session:
        audit.append(
            session, AuditSigner([OLD_KEY]), at=START, actor="a", action="old", subject="s"
        )
    rotated = {**env, "LICENSEBOT_AUDIT_KEYS": f"{audit_key},{OLD_KEY}"}
    # A CLI action after rotation signs with the new key.
    assert invoke(rotated, "roles", "grant", "UAUD00001", "auditor").exit_code == 0

    intact = invoke(rotated, "audit", "verify")
    dropped = invoke(env, "audit", "verify")

    assert intact.stdout.startswith("2 entries, chain intact, head ")
    line = error_line(dropped)
    assert f"entry 1 is signed with audit key id {audit.key_id(OLD_KEY)}" in line
    assert OLD_KEY not in line and audit_key not in line


def test_verify_sign_legacy_signs_entries_from_before_signing_once(
    history: Runtime, env: dict[str, str | None]
) -> None:
    sql(history, "UPDATE audit_entry SET key_id = NULL, mac = NULL WHERE id <= 2")

    before = invoke(env, "audit", "verify")
    signed = invoke(env, "audit", "verify", "--sign-legacy")
    after = invoke(env, "audit", "verify")

    assert "entry 1 is unsigned" in error_line(before)
    assert signed.exit_code == 0
    assert signed.stdout.splitlines()[0] == (
        f"Signed 2 legacy entries with audit key id {history.audit_keys.key_id}."
    )
    assert signed.stdout.splitlines()[1].startswith("6 entries, chain intact")
    assert after.stdout.startswith("6 entries, chain intact")


def test_verify_sign_legacy_refuses_a_broken_chain_and_signs_nothing(
    history: Runtime, env: dict[str, str | None]
) -> None:
    sql(history, "UPDATE audit_entry SET key_id = NULL, mac = NULL WHERE id <= 2")
    sql(history, "UPDATE audit_entry SET action = 'forged' WHERE id = 1")

    line = error_line(invoke(env, "audit", "verify", "--sign-legacy"))

    assert "not signing the legacy entries: entry 1: content edited" in line
    with history.db.read() as session:
        unsigned = session.exec(select(AuditEntry.id).where(col(AuditEntry.mac).is_(None)))
        assert sorted(unsigned.all()) == [1, 2]


# --- the audit key setting --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "too-short", "x" * 40 + ",tiny"])
def test_a_malformed_audit_key_setting_is_one_line_naming_it(
    env: dict[str, str | None], value: str
) -> None:
    line = error_line(invoke({**env, "LICENSEBOT_AUDIT_KEYS": value}, "audit", "verify"))
    assert line.startswith("licensebot: LICENSEBOT_AUDIT_KEYS: ")
    assert "too-short" not in line and "tiny" not in line


def test_without_the_setting_the_cli_makes_a_key_file_beside_the_database(
    tmp_path: Path, encryption_key: str
) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'licensebot.db'}",
        "LICENSEBOT_ENCRYPTION_KEYS": encryption_key,
        "LICENSEBOT_AUDIT_KEYS": None,
        **NO_SLACK,
    }
    first = invoke(env, "roles", "grant", "UAUD00001", "auditor")
    second = invoke(env, "audit", "verify")

    key_file = tmp_path / "licensebot-audit.key"
    assert f"created audit key file {key_file}" in first.stderr
    assert second.stderr == "" and second.stdout.startswith("1 entries, chain intact")
    keys = Settings(database_url=env["DATABASE_URL"], licensebot_audit_keys=None).audit_keys()
    assert keys == [key_file.read_text(encoding="ascii").strip()]


# --- export -----------------------------------------------------------------------------------


def ids(result: Result) -> list[int]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


def test_export_carries_the_signature_of_each_entry(
    history: Runtime, env: dict[str, str | None]
) -> None:
    jsonl = [json.loads(line) for line in invoke(env, "audit", "export").stdout.splitlines()]
    rows = list(
        csv.DictReader(io.StringIO(invoke(env, "audit", "export", "--format", "csv").stdout))
    )

    signer = history.audit_keys
    assert [r["id"] for r in jsonl] == [1, 2, 3, 4, 5, 6]
    for record, row in zip(jsonl, rows, strict=True):
        assert record["key_id"] == row["key_id"] == signer.key_id
        assert record["mac"] == row["mac"]
        assert signer.check(record["key_id"], record["hash"], record["mac"])
    assert [r["product_id"] for r in jsonl] == [
        "intellij",
        None,
        "intellij",
        "figma",
        None,
        "figma",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "2026-11-02T11:00:00"], [3, 4, 5, 6]),  # inclusive, naive = UTC
        (["--since", "2026-11-02T12:00:00+01:00"], [3, 4, 5, 6]),  # 11:00 UTC
        (["--until", "2026-11-02T11:00:00Z"], [1, 2]),  # exclusive
        (["--since", "2026-11-02"], [1, 2, 3, 4, 5, 6]),  # a date is its midnight
        (["--until", "2026-11-02"], []),
        (["--since", "2026-11-02T10:00", "--until", "2026-11-02T12:00"], [2, 3]),
        (["--actor", "UMGR00001"], [2, 6]),
        (["--product", "figma"], [4, 6]),
        (["--product", "intellij", "--actor", "licensebot"], [3]),
        (["--actor", "nobody"], []),
    ],
)
def test_export_filters(
    history: Runtime, env: dict[str, str | None], args: list[str], expected: list[int]
) -> None:
    assert ids(invoke(env, "audit", "export", *args)) == expected


def test_export_filters_apply_to_csv_too(history: Runtime, env: dict[str, str | None]) -> None:
    result = invoke(env, "audit", "export", "--format", "csv", "--product", "figma")
    assert [r["id"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["4", "6"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 date or date-time"),
        (["--until", "2026-13-01"], "--until: '2026-13-01' is not an ISO 8601 date"),
        (["--since", "2026-11-03", "--until", "2026-11-02"], "must be before --until"),
    ],
)
def test_export_refuses_bad_dates_in_one_line(
    env: dict[str, str | None], args: list[str], message: str
) -> None:
    assert message in error_line(invoke(env, "audit", "export", *args))


def test_generate_key_prints_a_usable_audit_key(env: dict[str, str | None]) -> None:
    made = invoke({}, "audit", "generate-key").stdout.strip()

    assert audit.parse_keys(made) == [made]
    assert invoke({**env, "LICENSEBOT_AUDIT_KEYS": made}, "audit", "verify").exit_code == 0

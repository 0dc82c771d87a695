"""The audit chain: signed entries, every kind of tampering found, keys rotated, writers serialized.

Tampering is done the way an attacker with database access would do it: raw SQL on the table,
including recomputing the sha256 chain (which is public) after an edit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import col, select

from bot.errors import ConfigError
from bot.runtime import Runtime
from bot.settings import Settings
from storage import audit
from storage.audit import AuditKeyError, AuditSigner
from storage.db import Database, alembic_config
from storage.models import AuditEntry, AuditHead

KEY_A = "a" * 20 + "-key-number-one-0123456789"
KEY_B = "b" * 20 + "-key-number-two-0123456789"


def add(rt: Runtime, n: int, *, signer: AuditSigner | None = None, **over: Any) -> None:
    """Append ``n`` entries, each in its own transaction, as the services do."""
    for i in range(n):
        with rt.db.transaction() as session:
            values: dict[str, Any] = {
                "at": rt.clock.now(),
                "actor": f"U{i % 3}AAAAAA",
                "action": "test.event",
                "subject": f"thing:{i}",
                "details": {"n": i, "product": "intellij" if i % 2 else "figma"},
            }
            values.update(over)
            audit.append(session, signer or rt.audit_keys, **values)


def check(rt: Runtime, signer: AuditSigner | None = None) -> audit.ChainReport:
    with rt.db.read() as session:
        return audit.verify(session, signer or rt.audit_keys)


def sql(rt: Runtime, statement: str, **params: Any) -> None:
    with rt.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def rows(rt: Runtime) -> list[AuditEntry]:
    with rt.db.read() as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all())


def rehash_from(rt: Runtime, first: int, *, head: bool = True) -> None:
    """What an attacker without the audit key can do: recompute every sha256 from ``first`` on."""
    entries = rows(rt)
    prev = entries[first - 2].hash if first > 1 else audit.GENESIS
    for entry in entries[first - 1 :]:
        assert entry.id is not None
        digest = audit.entry_hash(
            prev_hash=prev,
            seq=entry.id,
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
    if head:
        sql(rt, "UPDATE audit_head SET hash = :h, last_id = :n", h=prev, n=len(entries))


def copy_row(rt: Runtime, source: int, new_id: int, **values: Any) -> None:
    """INSERT a row with ``source``'s columns under ``new_id``, some of them changed."""
    with rt.db.engine.begin() as conn:
        found = conn.execute(text("SELECT * FROM audit_entry WHERE id = :i"), {"i": source})
        row = dict(found.mappings().one())
        row.update(id=new_id, **values)
        names = ", ".join(row)
        conn.execute(
            text(f"INSERT INTO audit_entry ({names}) VALUES ({', '.join(':' + n for n in row)})"),
            row,
        )


def move(rt: Runtime, old: int, new: int) -> None:
    sql(rt, "UPDATE audit_entry SET id = :new WHERE id = :old", new=new, old=old)


# --- signing ----------------------------------------------------------------------------------


def test_each_entry_records_its_key_id_and_an_hmac_of_its_hash(runtime: Runtime) -> None:
    add(runtime, 2)

    first, second = rows(runtime)
    kid = runtime.audit_keys.key_id
    assert first.key_id == second.key_id == kid
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert second.prev_hash == first.hash
    assert first.mac and first.mac != second.mac and len(first.mac) == 64
    assert runtime.audit_keys.check(kid, first.hash, first.mac)
    assert not runtime.audit_keys.check(kid, second.hash, first.mac)
    assert (first.product_id, second.product_id) == ("figma", "intellij")


def test_key_id_is_a_fingerprint_and_the_key_never_shows() -> None:
    signer = AuditSigner([KEY_A])

    expected = hashlib.sha256(b"licensebot-audit-key-id:" + KEY_A.encode()).hexdigest()[:16]
    assert signer.key_id == audit.key_id(KEY_A) == expected
    assert KEY_A not in repr(signer) and KEY_A[:16] not in signer.key_id
    kid, mac = signer.sign("ab" * 32)
    # The key ID is inside the MAC: a row cannot be relabelled as signed by another key.
    assert mac != hmac.new(KEY_A.encode(), ("ab" * 32).encode(), hashlib.sha256).hexdigest()
    assert signer.check(kid, "ab" * 32, mac) and not signer.check("0" * 16, "ab" * 32, mac)


@pytest.mark.parametrize(
    "raw", ["", " , ,", "short", "x" * 31, "x" * 40 + " y", "ü" * 40, "x" * 40 + ",tiny"]
)
def test_empty_or_weak_audit_keys_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(AuditKeyError) as caught:
        audit.parse_keys(raw)
    if raw.strip(" ,"):
        assert "x" * 31 not in str(caught.value) and "tiny" not in str(caught.value)


def test_keys_parse_in_order_and_generated_keys_are_valid() -> None:
    made = audit.generate_key()
    assert audit.parse_keys(f" {made} ,{KEY_A}, ") == [made, KEY_A]
    assert AuditSigner([made, KEY_A]).key_id == audit.key_id(made)


def test_settings_name_the_setting_when_it_is_empty_or_malformed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    for raw in ("", "not-a-key"):
        with pytest.raises(ConfigError, match=r"^LICENSEBOT_AUDIT_KEYS: "):
            Settings(database_url=url, licensebot_audit_keys=raw).audit_keys()
    assert Settings(database_url=url, licensebot_audit_keys=KEY_A).audit_keys() == [KEY_A]
    assert not (tmp_path / "licensebot-audit.key").exists()


def test_without_the_setting_a_key_file_is_made_once_beside_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'data' / 'x.db'}", licensebot_audit_keys=None
    )

    first = settings.audit_keys()
    made = capsys.readouterr().err
    second = settings.audit_keys()

    key_file = tmp_path / "data" / "licensebot-audit.key"
    assert f"created audit key file {key_file} (mode 0600)" in made
    assert first[0] not in made
    assert capsys.readouterr().err == ""
    assert first == second and len(first) == 1
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_file.write_text("damaged\n", encoding="ascii")
    with pytest.raises(ConfigError, match=r"licensebot-audit\.key: .*set LICENSEBOT_AUDIT_KEYS"):
        settings.audit_keys()


# --- verify: intact, and each kind of tampering ------------------------------------------------


def test_an_untouched_log_verifies(runtime: Runtime) -> None:
    assert check(runtime) == audit.ChainReport(0, audit.GENESIS)
    add(runtime, 5)

    report = check(runtime)

    assert report.intact and report.problem is None
    assert report.entries == 5 and report.head == rows(runtime)[-1].hash


def test_an_edited_entry_is_named(runtime: Runtime) -> None:
    add(runtime, 5)
    sql(runtime, "UPDATE audit_entry SET actor = 'UFORGED01' WHERE id = 3")

    report = check(runtime)

    assert (report.first_bad, report.kind, report.entries) == (3, "edited", 2)
    assert report.problem == "entry 3: content edited (its hash does not match its content)"


@pytest.mark.parametrize("head", [True, False], ids=["head-updated", "head-left"])
def test_recomputing_the_sha256_chain_after_an_edit_does_not_pass(
    runtime: Runtime, head: bool
) -> None:
    add(runtime, 5)
    sql(runtime, "UPDATE audit_entry SET details = :d WHERE id = 3", d='{"n":99,"product":"figma"}')
    rehash_from(runtime, 3, head=head)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (3, "signature")
    assert report.problem is not None and "entry 3: signature invalid" in report.problem


def test_the_product_column_cannot_be_edited_to_hide_an_entry_from_filters(
    runtime: Runtime,
) -> None:
    add(runtime, 3)
    sql(runtime, "UPDATE audit_entry SET product_id = 'other' WHERE id = 2")

    report = check(runtime)

    assert (report.first_bad, report.kind) == (2, "edited")
    assert report.problem is not None and "product_id" in report.problem


def test_a_deleted_entry_is_named(runtime: Runtime) -> None:
    add(runtime, 5)
    sql(runtime, "DELETE FROM audit_entry WHERE id = 3")

    report = check(runtime)

    assert (report.first_bad, report.kind) == (3, "deleted")
    assert report.problem == "entry 3 is missing: the log jumps from entry 2 to entry 4 (deleted)"


def test_deleting_the_first_entry_is_named(runtime: Runtime) -> None:
    add(runtime, 3)
    sql(runtime, "DELETE FROM audit_entry WHERE id = 1")

    report = check(runtime)

    assert (report.first_bad, report.kind) == (1, "deleted")
    assert report.problem == "entry 1 is missing: the log starts at entry 2 (deleted)"


def test_deleting_the_newest_entries_is_found_against_the_head(runtime: Runtime) -> None:
    add(runtime, 5)
    sql(runtime, "DELETE FROM audit_entry WHERE id >= 4")

    report = check(runtime)

    assert (report.first_bad, report.kind, report.entries) == (4, "deleted", 3)
    assert "chain head records 5 entries but the log ends at entry 3" in str(report.problem)


def test_deleting_and_renumbering_is_named(runtime: Runtime) -> None:
    add(runtime, 5)
    sql(runtime, "DELETE FROM audit_entry WHERE id = 3")
    move(runtime, 4, 3)
    move(runtime, 5, 4)
    sql(runtime, "UPDATE audit_head SET last_id = 4, hash = :h", h=rows(runtime)[-1].hash)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (3, "deleted")
    assert "the entry written before it is gone" in str(report.problem)


def test_an_entry_inserted_past_the_head_is_named(runtime: Runtime) -> None:
    add(runtime, 3)
    # A well-formed forgery: linked to the last entry, hashed, with a copied key ID and MAC.
    copy_row(runtime, 3, 4, actor="UFORGED01", prev_hash=rows(runtime)[-1].hash)
    rehash_from(runtime, 4, head=False)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (4, "inserted")
    assert report.problem == "entry 4 was inserted: it lies past the chain head (entry 3)"


@pytest.mark.parametrize(
    ("signature", "kind"),
    [("copied", "signature"), ("none", "unsigned")],
)
def test_an_entry_inserted_with_the_head_moved_has_no_valid_signature(
    runtime: Runtime, signature: str, kind: str
) -> None:
    add(runtime, 3)
    values: dict[str, Any] = {"actor": "UFORGED01"}
    if signature == "none":
        values |= {"key_id": None, "mac": None}
    copy_row(runtime, 3, 4, **values)
    rehash_from(runtime, 4)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (4, kind)


def test_an_entry_inserted_in_the_middle_is_named(runtime: Runtime) -> None:
    add(runtime, 4)
    # Make room at 3 (from the top down, so IDs never collide), insert, re-hash everything.
    for entry_id in (4, 3):
        move(runtime, entry_id, entry_id + 1)
    copy_row(runtime, 2, 3, actor="UFORGED01", subject="thing:forged")
    rehash_from(runtime, 3)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (3, "signature")


def test_an_inserted_entry_with_a_made_up_link_is_called_inserted(runtime: Runtime) -> None:
    add(runtime, 4)
    for entry_id in (4, 3):
        move(runtime, entry_id, entry_id + 1)
    copy_row(runtime, 2, 3, actor="UFORGED01", prev_hash="f" * 64, hash="c" * 64)
    sql(runtime, "UPDATE audit_head SET last_id = 5")

    report = check(runtime)

    assert (report.first_bad, report.kind) == (3, "inserted")
    assert "does not follow entry 2 and carries no valid signature" in str(report.problem)


def test_a_replayed_copy_of_a_genuine_entry_is_named(runtime: Runtime) -> None:
    add(runtime, 4)
    # Its MAC is genuine (copied with it), but it is where it was never written.
    sql(runtime, "DELETE FROM audit_entry WHERE id = 4")
    copy_row(runtime, 2, 4)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (4, "inserted")
    assert report.problem == "entry 4 is a copy of entry 2 (inserted)"


def test_reordered_entries_are_named(runtime: Runtime) -> None:
    add(runtime, 5)
    move(runtime, 2, 100)
    move(runtime, 3, 2)
    move(runtime, 100, 3)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (2, "reordered")
    assert report.problem == (
        "entry 2 is out of order: it was written after entry 3, which now comes after it "
        "(entries reordered)"
    )


def test_an_altered_head_is_named(runtime: Runtime) -> None:
    add(runtime, 3)
    sql(runtime, "UPDATE audit_head SET hash = :h", h="e" * 64)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (3, "head")


def test_a_deleted_head_is_named(runtime: Runtime) -> None:
    add(runtime, 2)
    sql(runtime, "DELETE FROM audit_head")

    report = check(runtime)

    assert not report.intact and report.kind == "head"
    assert report.problem == "the chain head (audit_head) is missing: it was deleted"


def test_an_entry_with_an_id_below_one_is_inserted(runtime: Runtime) -> None:
    add(runtime, 2)
    copy_row(runtime, 1, 0)

    report = check(runtime)

    assert (report.first_bad, report.kind) == (0, "inserted")


# --- keys: rotation and keys no longer configured ---------------------------------------------


def test_rotating_keys_keeps_old_entries_verifiable(runtime: Runtime) -> None:
    old, new = AuditSigner([KEY_A]), AuditSigner([KEY_B, KEY_A])
    add(runtime, 2, signer=old)
    add(runtime, 2, signer=new)

    assert [e.key_id for e in rows(runtime)] == [old.key_id] * 2 + [new.key_id] * 2
    assert new.key_id == audit.key_id(KEY_B) != old.key_id
    assert check(runtime, new).intact and check(runtime, new).entries == 4
    # The old key alone cannot vouch for the new entries.
    assert check(runtime, old).kind == "unknown_key"


def test_an_entry_signed_by_a_key_no_longer_configured_names_the_key_id(
    runtime: Runtime,
) -> None:
    add(runtime, 2, signer=AuditSigner([KEY_A]))

    report = check(runtime, AuditSigner([KEY_B]))

    assert (report.first_bad, report.kind) == (1, "unknown_key")
    assert f"audit key id {audit.key_id(KEY_A)}" in str(report.problem)
    assert audit.key_id(KEY_B) in str(report.problem)
    assert KEY_A not in str(report.problem) and KEY_B not in str(report.problem)


# --- entries written before signing existed ---------------------------------------------------


def test_legacy_entries_are_reported_unsigned_until_signed(runtime: Runtime) -> None:
    add(runtime, 5)
    sql(runtime, "UPDATE audit_entry SET key_id = NULL, mac = NULL WHERE id <= 3")

    before = check(runtime)
    with runtime.db.transaction() as session:
        signed = audit.sign_legacy(session, runtime.audit_keys)
    with runtime.db.transaction() as session:
        again = audit.sign_legacy(session, runtime.audit_keys)

    assert (before.first_bad, before.kind) == (1, "unsigned")
    assert (signed, again) == (3, 0)
    assert check(runtime).intact


def test_an_unsigned_entry_after_signed_ones_is_never_signed(runtime: Runtime) -> None:
    add(runtime, 4)
    sql(runtime, "UPDATE audit_entry SET key_id = NULL, mac = NULL WHERE id = 3")

    with runtime.db.transaction() as session:
        assert audit.sign_legacy(session, runtime.audit_keys) == 0

    assert (check(runtime).first_bad, check(runtime).kind) == (3, "unsigned")


def test_legacy_entries_whose_chain_is_broken_are_not_signed(runtime: Runtime) -> None:
    add(runtime, 4)
    sql(runtime, "UPDATE audit_entry SET key_id = NULL, mac = NULL")
    sql(runtime, "UPDATE audit_entry SET subject = 'thing:forged' WHERE id = 2")

    with pytest.raises(AuditKeyError, match="entry 2: content edited"):  # noqa: SIM117
        with runtime.db.transaction() as session:
            audit.sign_legacy(session, runtime.audit_keys)

    assert all(e.mac is None for e in rows(runtime))


def test_the_migration_keeps_old_entries_and_fills_their_product(database_url: str) -> None:
    db = Database(database_url)
    try:
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        prev = audit.GENESIS
        with db.engine.begin() as conn:
            for i, details in enumerate([{"product": "figma"}, {"x": 1}, {"product": 7}], 1):
                body = audit.canonical(details)
                digest = audit.entry_hash(
                    prev_hash=prev, seq=i, at=at, actor="a", action="b", subject="c", details=body
                )
                conn.execute(
                    text(
                        "INSERT INTO audit_entry (id, at, actor, action, subject, details, "
                        "prev_hash, hash) VALUES (:i, :at, 'a', 'b', 'c', :d, :p, :h)"
                    ),
                    {"i": i, "at": at, "d": body, "p": prev, "h": digest},
                )
                prev = digest
            conn.execute(text("UPDATE audit_head SET last_id = 3, hash = :h"), {"h": prev})
        db.upgrade()

        with db.read() as session:
            migrated = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
            report = audit.verify(session, AuditSigner([KEY_A]))
        assert [e.product_id for e in migrated] == ["figma", None, None]
        assert all(e.key_id is None and e.mac is None for e in migrated)
        assert (report.first_bad, report.kind) == (1, "unsigned")
    finally:
        db.dispose()


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers_never_fork_the_chain(runtime: Runtime) -> None:
    threads, each = 8, 25
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with runtime.db.transaction() as session:
                    audit.append(
                        session,
                        runtime.audit_keys,
                        at=runtime.clock.now() + timedelta(seconds=i),
                        actor=f"UWORKER{worker:02d}",
                        action="test.concurrent",
                        subject=f"thing:{worker}:{i}",
                        details={"worker": worker, "i": i},
                    )
        except BaseException as exc:  # collected and re-raised in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)

    assert failures == []
    report = check(runtime)
    assert report.intact, report.problem
    assert report.entries == threads * each == 200
    entries = rows(runtime)
    assert [e.id for e in entries] == list(range(1, 201))
    # Every worker's entries are all there, each worker's in the order it wrote them.
    for w in range(threads):
        mine = [json.loads(e.details)["i"] for e in entries if e.actor == f"UWORKER{w:02d}"]
        assert mine == list(range(each))
    with runtime.db.read() as session:
        head = session.get(AuditHead, 1)
        assert head is not None and (head.last_id, head.hash) == (200, entries[-1].hash)


def test_verify_while_others_append_never_reports_a_false_problem(runtime: Runtime) -> None:
    add(runtime, 3)
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            add(runtime, 60)
        except BaseException as exc:  # collected and re-raised in the test's thread
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reports = []
    while not done.is_set():
        reports.append(check(runtime))
    writer.join(timeout=120)

    assert failures == []
    assert [r.problem for r in reports if not r.intact] == []
    assert check(runtime).entries == 63

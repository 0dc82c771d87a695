"""Key custody: `keys rotate` (resumable, safe under traffic) and the start-up key check."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlmodel import col, select

from bot import delivery, keys, rotation
from bot.catalog import load_catalog
from bot.cli import cli
from bot.errors import ConfigError, VaultError
from bot.runtime import Runtime, build_runtime
from bot.settings import load_settings
from storage.models import Assignment, AuditEntry, LicenseKey
from storage.vault import Vault, VaultKeyError

LICENSEBOT = str(Path(sys.executable).with_name("licensebot"))
CATALOG = """
products:
  - {id: intellij, name: IntelliJ IDEA, delivery: key, seats: 500, approval: [manager]}
  - {id: sublime, name: Sublime Text, delivery: key, seats: 500, approval: [manager]}
"""
HOLDERS = ["UHOLD0001", "UHOLD0002", "UHOLD0003"]
WRONG_KEYS = "LICENSEBOT_ENCRYPTION_KEYS cannot decrypt the stored license keys"


def pool(count: int, prefix: str = "ROT-SECRET") -> list[str]:
    return [f"{prefix}-{i:05}-KEY" for i in range(count)]


@pytest.fixture
def old_key(encryption_key: str) -> str:
    return encryption_key  # what the `runtime` fixture encrypted with


@pytest.fixture
def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    load_catalog(runtime, CATALOG, actor="test")
    return runtime


@pytest.fixture
def stocked(rt: Runtime) -> dict[int, str]:
    """12 keys under the old key, the first three held by HOLDERS; returns id -> key."""
    keys.import_keys(rt, "intellij", pool(12), actor="test")
    with rt.db.transaction() as session:
        for user, key_id in zip(HOLDERS, (1, 2, 3), strict=True):
            session.add(
                Assignment(
                    product_id="intellij", user_id=user, key_id=key_id, assigned_at=rt.clock.now()
                )
            )
    return plaintexts(rt, rt.vault)


def plaintexts(rt: Runtime, vault: Vault) -> dict[int, str]:
    """Every stored key by id, decrypted with ``vault`` (raises if one cannot be)."""
    with rt.db.read() as session:
        rows = session.exec(select(LicenseKey.id, LicenseKey.ciphertext)).all()
    return {key_id: vault.reveal(token) for key_id, token in rows if key_id is not None}


def under(rt: Runtime, key: str) -> list[int]:
    """Ids of the rows encrypted with exactly ``key``."""
    only = Vault([key])
    with rt.db.read() as session:
        rows = session.exec(
            select(LicenseKey.id, LicenseKey.ciphertext).order_by(col(LicenseKey.id))
        ).all()
    return [key_id for key_id, token in rows if key_id is not None and only.is_current(token)]


def reveal_assigned(rt: Runtime) -> dict[str, str]:
    with rt.db.read() as session:
        held = session.exec(select(Assignment).order_by(col(Assignment.id))).all()
    return {
        a.user_id: delivery.reveal_key(rt, actor=a.user_id, assignment_id=a.id or 0).key
        for a in held
    }


def rotated_entries(rt: Runtime) -> list[str]:
    with rt.db.read() as session:
        return list(
            session.exec(
                select(AuditEntry.details)
                .where(AuditEntry.action == "keys.rotated")
                .order_by(col(AuditEntry.id))
            )
        )


def invoke(database_url: str, keys_setting: str, *args: str) -> Result:
    env = {"DATABASE_URL": database_url, "LICENSEBOT_ENCRYPTION_KEYS": keys_setting}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def restarted(
    monkeypatch: pytest.MonkeyPatch, database_url: str, keys_setting: str
) -> Iterator[Runtime]:
    """A runtime built as `serve` and the CLI build theirs: from the environment."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LICENSEBOT_ENCRYPTION_KEYS", keys_setting)
    fresh = build_runtime(load_settings())
    try:
        yield fresh
    finally:
        fresh.db.dispose()


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# --- rotation ---------------------------------------------------------------------------------


def test_rotate_then_restart_with_only_the_new_key_reveals_every_key(
    rt: Runtime,
    stocked: dict[int, str],
    database_url: str,
    old_key: str,
    new_key: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with rt.db.read() as session:
        before = dict(session.exec(select(LicenseKey.id, LicenseKey.ciphertext)).all())

    first = invoke(database_url, f"{new_key},{old_key}", "keys", "rotate", "--batch-size", "5")
    again = invoke(database_url, f"{new_key},{old_key}", "keys", "rotate")

    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Re-encrypted 12 license keys under the first key")
    assert again.stdout.startswith("Re-encrypted 0 license keys")
    assert under(rt, new_key) == sorted(stocked)
    with rt.db.read() as session:
        after = dict(session.exec(select(LicenseKey.id, LicenseKey.ciphertext)).all())
    assert all(after[i] != before[i] for i in before)
    assert rotated_entries(rt) == [
        '{"already_current":0,"rotated":12}',
        '{"already_current":12,"rotated":0}',
    ]

    # The restart: only the new key; it starts, and every key still reads as it was imported.
    for fresh in restarted(monkeypatch, database_url, new_key):
        assert plaintexts(fresh, fresh.vault) == stocked
        assert reveal_assigned(fresh) == {user: stocked[i] for i, user in enumerate(HOLDERS, 1)}
    with pytest.raises(VaultKeyError):
        plaintexts(rt, Vault([old_key]))  # the old key reads none of them any more
    listed = invoke(database_url, new_key, "catalog", "list")
    assert listed.exit_code == 0, listed.output

    everything = first.output + again.output + listed.output + caplog.text
    assert_no_secret(everything, new_key, old_key, *stocked.values())


def test_rows_already_under_the_new_key_are_skipped(
    rt: Runtime, stocked: dict[int, str], old_key: str, new_key: str
) -> None:
    serving = dataclasses.replace(rt, vault=Vault([new_key, old_key]))
    keys.import_keys(serving, "intellij", ["ROT-SECRET-NEW-KEY"], actor="test")

    assert rotation.rotate_keys(serving, actor="test") == 12  # the new row was skipped
    assert sorted(plaintexts(rt, Vault([new_key])).values()) == sorted(
        [*stocked.values(), "ROT-SECRET-NEW-KEY"]
    )


class Interrupted(BaseException):
    """What Ctrl-C raises, without being KeyboardInterrupt (which pytest would act on)."""


class FailingVault(Vault):
    """Raises like an interrupt on the ``after``-th re-encryption."""

    def __init__(self, keys: list[str], after: int) -> None:
        super().__init__(keys)
        self.calls = 0
        self.after = after

    def rotate(self, token: str) -> str:
        self.calls += 1
        if self.calls == self.after:
            raise Interrupted
        return super().rotate(token)


def test_an_interrupted_rotation_resumes_and_loses_nothing(
    rt: Runtime,
    stocked: dict[int, str],
    old_key: str,
    new_key: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    interrupted = dataclasses.replace(rt, vault=FailingVault([new_key, old_key], after=8))
    with pytest.raises(Interrupted):
        rotation.rotate_keys(interrupted, actor="test", batch=5)

    assert under(rt, new_key) == [1, 2, 3, 4, 5]  # the first batch committed, the second not
    assert rotated_entries(rt) == []  # audited when a run completes
    # Dropping the old key now would lose the rest: start-up refuses, naming the setting.
    with pytest.raises(ConfigError, match=WRONG_KEYS) as refused:
        next(restarted(monkeypatch, database_url, new_key))
    assert_no_secret(str(refused.value), new_key, old_key, *stocked.values())

    resumed = dataclasses.replace(rt, vault=Vault([new_key, old_key]))
    assert rotation.rotate_keys(resumed, actor="test", batch=5) == 7
    assert rotated_entries(rt) == ['{"already_current":5,"rotated":7}']
    for fresh in restarted(monkeypatch, database_url, new_key):
        assert plaintexts(fresh, fresh.vault) == stocked
        assert reveal_assigned(fresh) == {user: stocked[i] for i, user in enumerate(HOLDERS, 1)}


# A rotation killed hard (SIGKILL, as when the machine dies) in the middle of a batch's writes.
KILLED_ROTATION = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    updates = 0
    kill_at = int(sys.argv[1])

    @event.listens_for(Engine, "before_cursor_execute")
    def die(conn, cursor, statement, parameters, context, executemany):
        global updates
        if statement.lstrip().upper().startswith("UPDATE LICENSE_KEY"):
            updates += 1
            if updates == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    from bot.cli import main

    sys.argv = ["licensebot", "keys", "rotate", "--batch-size", "3"]
    main()
    """
)


def test_a_rotation_killed_mid_batch_resumes_and_loses_nothing(
    rt: Runtime,
    stocked: dict[int, str],
    old_key: str,
    new_key: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    env["LICENSEBOT_ENCRYPTION_KEYS"] = f"{new_key},{old_key}"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_ROTATION, "8"],  # the 2nd UPDATE of the 3rd batch
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert killed.returncode == -9, killed.stderr
    # Two batches committed; the third had written one row, which died with its transaction.
    assert under(rt, new_key) == [1, 2, 3, 4, 5, 6]
    resumed = subprocess.run(
        [LICENSEBOT, "keys", "rotate", "--batch-size", "3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("Re-encrypted 6 license keys")
    for fresh in restarted(monkeypatch, database_url, new_key):
        assert plaintexts(fresh, fresh.vault) == stocked
        assert reveal_assigned(fresh) == {user: stocked[i] for i, user in enumerate(HOLDERS, 1)}
    output = killed.stdout + killed.stderr + resumed.stdout + resumed.stderr
    assert_no_secret(output, new_key, old_key, *stocked.values())


def test_a_key_no_setting_can_read_stops_rotation_by_id_and_keeps_what_was_done(
    rt: Runtime, stocked: dict[int, str], old_key: str, new_key: str
) -> None:
    stranger = Vault([Fernet.generate_key().decode()])
    with rt.db.transaction() as session:
        session.add(
            LicenseKey(
                product_id="intellij",
                ciphertext=stranger.seal("ROT-SECRET-LOST"),
                imported_at=rt.clock.now(),
            )
        )
    rotating = dataclasses.replace(rt, vault=Vault([new_key, old_key]))

    with pytest.raises(VaultError) as stopped:
        rotation.rotate_keys(rotating, actor="test", batch=5)

    assert stopped.value.message.startswith(
        "License key #13 cannot be decrypted with any key in LICENSEBOT_ENCRYPTION_KEYS"
    )
    assert "10 keys were re-encrypted before it" in stopped.value.message
    assert under(rt, new_key) == list(range(1, 11))
    assert_no_secret(stopped.value.message, new_key, old_key, "ROT-SECRET")


def test_rotation_during_reveals_and_imports(
    rt: Runtime, old_key: str, new_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    imported = pool(300)
    keys.import_keys(rt, "intellij", imported, actor="test")
    with rt.db.transaction() as session:
        for n, user in enumerate(HOLDERS, start=1):
            session.add(
                Assignment(
                    product_id="intellij", user_id=user, key_id=n * 90, assigned_at=rt.clock.now()
                )
            )
    before = plaintexts(rt, rt.vault)
    # The serving process restarted with the new key first, like the rotating one.
    live = dataclasses.replace(rt, vault=Vault([new_key, old_key]))
    stop = threading.Event()
    errors: list[BaseException] = []
    spans: dict[str, list[tuple[float, float]]] = {"reveal": [], "intellij": [], "sublime": []}
    added: list[str] = []

    def traffic(kind: str, act: Callable[[int], None]) -> None:
        n = 0
        while not stop.is_set():
            began = time.monotonic()
            try:
                act(n)
            except BaseException as exc:  # collected and re-raised by the test thread
                errors.append(exc)
                return
            spans[kind].append((began, time.monotonic()))
            n += 1

    def reveal(user: str, expected: str) -> Callable[[int], None]:
        def act(_n: int) -> None:
            (got,) = reveal_assigned_one(live, user)
            if got != expected:
                raise AssertionError(f"{user} saw a different key")

        return act

    def import_into(product: str) -> Callable[[int], None]:
        def act(n: int) -> None:
            batch = [f"ROT-SECRET-LIVE-{product}-{n:04}-{x}" for x in "AB"]
            keys.import_keys(live, product, batch, actor="test")
            added.extend(batch)

        return act

    threads = [
        threading.Thread(target=traffic, args=("reveal", reveal(user, before[n * 90])))
        for n, user in enumerate(HOLDERS, start=1)
    ]
    # Into the pool being rotated (its dedupe decrypts old and new tokens side by side), and
    # into another product (new rows appear ahead of the rotation's position).
    threads += [
        threading.Thread(target=traffic, args=(product, import_into(product)))
        for product in ("intellij", "sublime")
    ]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while not all(spans.values()) and time.monotonic() < deadline:
            time.sleep(0.01)  # traffic first, then the rotation lands in the middle of it
        started = time.monotonic()
        count = rotation.rotate_keys(live, actor="test", batch=5)
        ended = time.monotonic()
        time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    assert not errors, errors
    assert count == 300  # every old row; the rows imported meanwhile were already new
    overlapping = {
        kind: sum(1 for began, done in done_spans if began < ended and done > started)
        for kind, done_spans in spans.items()
    }
    assert all(overlapping.values()), overlapping
    after = plaintexts(rt, Vault([new_key]))  # every row, with only the new key
    assert {i: after[i] for i in before} == before
    assert sorted(after.values()) == sorted([*imported, *added])
    assert_no_secret(caplog.text, new_key, old_key, "ROT-SECRET")


def reveal_assigned_one(rt: Runtime, user: str) -> list[str]:
    with rt.db.read() as session:
        held = session.exec(select(Assignment).where(Assignment.user_id == user)).one()
    return [delivery.reveal_key(rt, actor=user, assignment_id=held.id or 0).key]


def test_rotate_refuses_a_batch_size_below_one() -> None:
    result = CliRunner().invoke(cli, ["keys", "rotate", "--batch-size", "0"])
    assert result.exit_code == 2 and "--batch-size" in result.output


# --- the start-up check -----------------------------------------------------------------------


def test_the_start_up_check_reads_a_sample_not_every_key(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys.import_keys(rt, "intellij", pool(200), actor="test")
    with rt.db.read() as session:
        sample = rotation.sample_tokens(session)
    ids = [key_id for key_id, _ in sample]
    assert ids == [1, 50, 100, 150, 200]  # the oldest, the newest, and evenly between

    seen: list[str] = []
    real_reveal = Vault.reveal

    def counting(self: Vault, token: str) -> str:
        seen.append(token)
        return real_reveal(self, token)

    monkeypatch.setattr(Vault, "reveal", counting)
    rotation.check_stored_keys(rt.db, rt.vault, source="LICENSEBOT_ENCRYPTION_KEYS")
    assert len(seen) == 5


def test_the_newest_rows_are_in_the_sample(rt: Runtime, new_key: str) -> None:
    # Only the last row is unreadable: an old key dropped before the rotation reached the end.
    keys.import_keys(rt, "intellij", pool(40), actor="test")
    stranger = Vault([Fernet.generate_key().decode()])
    with rt.db.transaction() as session:
        session.add(
            LicenseKey(
                product_id="intellij", ciphertext=stranger.seal("X"), imported_at=rt.clock.now()
            )
        )

    with pytest.raises(ConfigError) as refused:
        rotation.check_stored_keys(rt.db, rt.vault, source="LICENSEBOT_ENCRYPTION_KEYS")
    assert "1 of 5 checked fail, e.g. license key #41" in refused.value.message


def test_an_empty_pool_passes_the_check(runtime: Runtime) -> None:
    rotation.check_stored_keys(runtime.db, runtime.vault, source="LICENSEBOT_ENCRYPTION_KEYS")


def subprocess_env(database_url: str, **settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "LICENSEBOT_ENCRYPTION", "DATABASE_URL"))
    }
    return {**env, "DATABASE_URL": database_url, **settings}


@pytest.mark.parametrize(
    "command", [["serve", "--port", "1"], ["catalog", "list"], ["keys", "rotate"]]
)
def test_wrong_keys_at_start_are_refused_naming_the_setting(
    stocked: dict[int, str],
    old_key: str,
    database_url: str,
    tmp_path: Path,
    command: list[str],
) -> None:
    wrong = Fernet.generate_key().decode()
    env = subprocess_env(
        database_url,
        LICENSEBOT_ENCRYPTION_KEYS=wrong,
        SLACK_BOT_TOKEN="xoxb-start-up-check",
        SLACK_SIGNING_SECRET="start-up-check-secret",
        # Nothing listens there: the check must refuse before any call to Slack.
        SLACK_API_URL="http://127.0.0.1:9/api/",
    )
    done = subprocess.run(
        [LICENSEBOT, *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1
    assert done.stdout == ""
    *logged, refusal = done.stderr.splitlines()
    assert refusal.startswith(f"licensebot: {WRONG_KEYS} (5 of 5 checked fail")
    assert "Set LICENSEBOT_ENCRYPTION_KEYS to the current key first" in refusal
    # serve logs its start (migrations) first, one structured line each; nothing else.
    assert all(line.startswith("ts=") for line in logged), logged
    assert "Traceback" not in done.stderr
    assert_no_secret(done.stderr, wrong, old_key, *stocked.values())


def test_a_lost_key_file_is_named_at_start(tmp_path: Path) -> None:
    # SQLite always: the key file lives beside the database file.
    url = f"sqlite:///{tmp_path / 'licensebot.db'}"
    env = subprocess_env(url)
    catalog_file = tmp_path / "catalog.yml"
    catalog_file.write_text(CATALOG, encoding="utf-8")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LICENSEBOT, *args],
            env=env,
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run("catalog", "load", str(catalog_file)).returncode == 0
    assert run("keys", "import", "intellij", "-", stdin="ROT-SECRET-FILE\n").returncode == 0
    (tmp_path / "licensebot.key").unlink()  # lost: the next start makes a new, different one

    done = run("catalog", "list")

    assert done.returncode == 1
    assert (
        f"licensebot: The encryption key file {tmp_path / 'licensebot.key'} (used because "
        f"LICENSEBOT_ENCRYPTION_KEYS is not set) cannot decrypt the stored license keys"
    ) in done.stderr
    assert "ROT-SECRET" not in done.stderr


def test_keys_generate_needs_no_readable_database(
    stocked: dict[int, str], database_url: str
) -> None:
    wrong = Fernet.generate_key().decode()
    result = invoke(database_url, wrong, "keys", "generate")
    assert result.exit_code == 0
    Fernet(result.stdout.strip().encode())  # a usable key


def test_rotate_works_with_the_old_key_second(
    stocked: dict[int, str], database_url: str, old_key: str, new_key: str
) -> None:
    result = invoke(database_url, f"{new_key},{old_key}", "keys", "rotate")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Re-encrypted 12 license keys")

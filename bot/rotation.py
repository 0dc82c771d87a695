"""Key custody: moving every stored license key to the newest encryption key, and the start-up
check that the configured encryption keys can read the stored keys at all.

Rotating ``LICENSEBOT_ENCRYPTION_KEYS``: generate a new key, put it FIRST and keep the old ones
after it, restart the bot (it now encrypts with the new key and still decrypts with every key),
run ``licensebot keys rotate``, then remove the old keys. Plain text never leaves this module:
only Fernet tokens are read and written, and errors name row ids, never keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bot.errors import ConfigError, InputError, VaultError
from storage import audit
from storage.db import Database
from storage.models import LicenseKey
from storage.vault import Vault, VaultKeyError

if TYPE_CHECKING:  # bot.runtime imports this module for the start-up check
    from bot.runtime import Runtime

BATCH = 500
SAMPLE_SIZE = 5


def rotate_keys(rt: Runtime, *, actor: str, batch: int = BATCH) -> int:
    """Re-encrypt every stored key under the first encryption key; returns how many changed.

    The table is walked in id order, ``batch`` rows per short transaction, so reveals and
    imports running meanwhile wait for one batch at most, and an interrupted run keeps every
    batch it committed: a re-run skips the rows already under the first key and carries on.
    """
    if batch < 1:
        raise InputError("The batch size must be at least 1.")
    rotated = already_current = 0
    after = 0
    while True:
        with rt.db.read() as session:
            rows = session.exec(
                select(LicenseKey.id, LicenseKey.ciphertext)
                .where(col(LicenseKey.id) > after)
                .order_by(col(LicenseKey.id))
                .limit(batch)
            ).all()
        if not rows:
            break
        changes: list[tuple[int, str, str]] = []
        # Decrypted and re-encrypted before the write transaction opens, so the transaction
        # holds SQLite's writer lock (or PostgreSQL's row locks) only for the UPDATEs.
        for key_id, token in rows:
            assert key_id is not None
            after = key_id
            if rt.vault.is_current(token):
                already_current += 1
                continue
            try:
                changes.append((key_id, token, rt.vault.rotate(token)))
            except VaultKeyError:
                raise VaultError(
                    f"License key #{key_id} cannot be decrypted with any key in "
                    "LICENSEBOT_ENCRYPTION_KEYS; add the key it was encrypted with (after the "
                    f"new one) and run `licensebot keys rotate` again. {rotated} keys were "
                    "re-encrypted before it and stay so."
                ) from None
        if not changes:
            continue
        with rt.db.transaction() as session:
            conn = session.connection()
            for key_id, old, new in changes:
                # Compare-and-set: a row that a concurrent rotation rewrote first is left alone
                # (and not counted twice).
                done = conn.execute(
                    update(LicenseKey)
                    .where(col(LicenseKey.id) == key_id, col(LicenseKey.ciphertext) == old)
                    .values(ciphertext=new)
                )
                rotated += done.rowcount
    with rt.db.transaction() as session:
        audit.append(
            session,
            rt.audit_keys,
            at=rt.clock.now(),
            actor=actor,
            action="keys.rotated",
            subject="license_keys",
            details={"rotated": rotated, "already_current": already_current},
        )
    return rotated


def sample_tokens(session: Session, size: int = SAMPLE_SIZE) -> list[tuple[int, str]]:
    """Up to ``size`` stored tokens: the oldest, the newest and some evenly between, by id.

    Ids, not OFFSET: each probe is one index lookup, however large the pool.
    """
    lowest, highest = session.exec(select(func.min(LicenseKey.id), func.max(LicenseKey.id))).one()
    if lowest is None or highest is None:
        return []
    probes = sorted({lowest + (highest - lowest) * i // max(size - 1, 1) for i in range(size)})
    found: dict[int, str] = {}
    for probe in probes:
        row = session.exec(
            select(LicenseKey.id, LicenseKey.ciphertext)
            .where(col(LicenseKey.id) >= probe)
            .order_by(col(LicenseKey.id))
            .limit(1)
        ).first()
        if row is not None and row[0] is not None:
            found[row[0]] = row[1]
    return sorted(found.items())


def check_stored_keys(db: Database, vault: Vault, *, source: str) -> None:
    """Refuse to start when ``vault`` cannot decrypt a sample of the stored license keys.

    A sample, not every row, so start-up stays fast with a large pool; the usual mistakes (a
    wrong key, a lost key file, an old key removed before ``keys rotate`` finished, which leaves
    the newest ids under it) show in the oldest and newest rows. ``source`` names where the
    keys came from, for the message.
    """
    with db.read() as session:
        tokens = sample_tokens(session)
    unreadable: list[int] = []
    for key_id, token in tokens:
        try:
            vault.reveal(token)
        except VaultKeyError:
            unreadable.append(key_id)
    if unreadable:
        raise ConfigError(
            f"{source} cannot decrypt the stored license keys ({len(unreadable)} of "
            f"{len(tokens)} checked fail, e.g. license key #{unreadable[0]}): the key they were "
            "encrypted with is missing. Set LICENSEBOT_ENCRYPTION_KEYS to the current key "
            "first and the old key(s) after it, comma-separated; `licensebot keys rotate` then "
            "moves every stored key to the first one."
        )

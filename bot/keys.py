"""Importing license keys into the encrypted pool of a key-delivered product.

A key is a secret: it goes into the database only as a Fernet token, and it never appears in
a message, an exception, a log line or the audit log. Problems name the line number only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlmodel import Session, select

from bot import seat_alerts
from bot.catalog import get_product
from bot.errors import KeyImportError, VaultError
from bot.runtime import Runtime
from storage import audit
from storage.models import LicenseKey, Product
from storage.vault import VaultKeyError

MAX_KEY_LENGTH = 1000


@dataclass(frozen=True)
class KeyImportResult:
    added: int
    duplicates: int
    # Waitlisted requests that were given one of the new keys in the same transaction.
    assigned: int = 0


def read_key_lines(lines: Iterable[str]) -> list[str]:
    """The keys in ``lines``: stripped, blanks dropped, in order (duplicates kept)."""
    keys: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if number == 1:
            # A byte-order mark from a Windows editor is not part of the first key.
            line = line.removeprefix("\ufeff").strip()
        if not line:
            continue
        if len(line) > MAX_KEY_LENGTH:
            raise KeyImportError(
                f"line {number} is longer than {MAX_KEY_LENGTH} characters, which is no "
                "license key; nothing was imported."
            )
        if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in line):
            raise KeyImportError(
                f"line {number} contains control or invisible characters; nothing was imported."
            )
        keys.append(line)
    return keys


def import_keys(
    rt: Runtime, product_id: str, lines: Iterable[str], *, actor: str
) -> KeyImportResult:
    """Add the new keys in ``lines`` to ``product_id``'s pool, skipping ones already there."""
    keys = read_key_lines(lines)
    if not keys:
        raise KeyImportError("The input has no keys (only blank lines); nothing was imported.")
    # By ID or exact name; an unknown one raises UnknownProduct with the closest IDs.
    info = get_product(rt, product_id, active_only=False)
    now = rt.clock.now()
    with rt.db.transaction() as session:
        product = _key_product(session, info.id)
        known = _stored_keys(session, rt, product.id)
        fresh: list[str] = []
        for key in keys:
            if key not in known:
                known.add(key)
                fresh.append(key)
        if fresh:
            # Core executemany: one round trip for the whole batch instead of one per ORM row.
            session.execute(
                insert(LicenseKey.__table__),  # type: ignore[attr-defined]  # set by SQLModel
                [
                    {"product_id": product.id, "ciphertext": rt.vault.seal(k), "imported_at": now}
                    for k in fresh
                ],
            )
        duplicates = len(keys) - len(fresh)
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="keys.imported",
            subject=f"product:{product.id}",
            details={"product": product.id, "added": len(fresh), "duplicates": duplicates},
        )
        assigned = 0
        if fresh:
            # Imported here so key import loads delivery (and its notifications) only when needed.
            from bot import delivery

            assigned = delivery.assign_waitlisted(session, rt, product.id, now=now)
            # New keys may end a shortage even with nobody waiting (or after serving them).
            seat_alerts.evaluate(session, rt, {product.id}, now=now)
    return KeyImportResult(added=len(fresh), duplicates=duplicates, assigned=assigned)


def _key_product(session: Session, product_id: str) -> Product:
    # Locked so two imports into one product cannot both decide the same key is new.
    product = session.exec(select(Product).where(Product.id == product_id).with_for_update()).one()
    if product.delivery != "key":
        raise KeyImportError(
            f"`{product.id}` is delivered as {product.delivery}s, not keys; set "
            "`delivery: key` in the catalog to import keys for it."
        )
    return product


def _stored_keys(session: Session, rt: Runtime, product_id: str) -> set[str]:
    # Fernet tokens are randomized, so equal keys have different ciphertexts: compare plaintext.
    tokens = session.exec(
        select(LicenseKey.ciphertext).where(LicenseKey.product_id == product_id)
    ).all()
    try:
        return {rt.vault.reveal(token) for token in tokens}
    except VaultKeyError:
        raise VaultError(
            f"A stored key of `{product_id}` cannot be decrypted with "
            "LICENSEBOT_ENCRYPTION_KEYS; add the key it was encrypted with (keep the new one "
            "first) before importing more."
        ) from None

"""The audit log: append-only, hash-chained and signed.

Each entry's ``hash`` is a sha256 over the previous entry's hash and its own content, so an edit,
deletion, insertion or reordering breaks the chain. sha256 alone only proves consistency: anyone
who can write to the table can recompute every hash after an edit. So each entry also carries an
HMAC of its hash (``mac``) made with a secret audit key the database never holds, and the ID of
that key (``key_id``, a fingerprint, never the key): forging an entry needs the key.

Keys rotate like the encryption keys: the first configured key signs, every configured key
verifies, so an old entry stays verifiable as long as its key stays in the list.

Appends lock the single ``audit_head`` row, which serializes concurrent writers on PostgreSQL
(SQLite writers are serialized by BEGIN IMMEDIATE), so the chain never forks.

What verification cannot prove on its own: that the newest entries were not cut off by someone
who also rewound ``audit_head`` to an older (genuine) state. Only a copy of the head kept
elsewhere (printed by ``verify``, posted to Slack) shows that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, insert, update
from sqlmodel import Session, col, select

from storage.models import AuditEntry, AuditHead

GENESIS = "0" * 64

# Domain-separation prefixes: a key ID can never be mistaken for a MAC and vice versa.
_KEY_ID_PREFIX = b"licensebot-audit-key-id:"
_MAC_PREFIX = b"licensebot-audit-mac-v1\x1f"
# 32 characters of a url-safe token carry ~190 bits; shorter secrets are refused as guessable.
MIN_KEY_LENGTH = 32
# Printable ASCII but the comma that separates keys: any password manager's output fits.
_KEY_ALPHABET = frozenset(chr(c) for c in range(0x21, 0x7F)) - {","}


class AuditKeyError(ValueError):
    """An audit key is missing or malformed (the message never contains the key)."""


def key_id(key: str) -> str:
    """The public fingerprint recorded with each entry: says which key signed, reveals nothing."""
    return hashlib.sha256(_KEY_ID_PREFIX + key.encode("ascii")).hexdigest()[:16]


def generate_key() -> str:
    return secrets.token_urlsafe(32)


def parse_keys(raw: str) -> list[str]:
    """Comma-separated audit keys, first one signs; refuses empty or weak ones."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise AuditKeyError("no audit key given")
    for position, key in enumerate(keys, start=1):
        if len(key) < MIN_KEY_LENGTH or not set(key) <= _KEY_ALPHABET:
            # Never echo the key: it is a secret.
            raise AuditKeyError(
                f"audit key #{position} is not usable (at least {MIN_KEY_LENGTH} printable "
                "ASCII characters without spaces or commas; `licensebot audit generate-key` "
                "makes one)"
            )
    return keys


def load_or_create_key_file(path: Path) -> tuple[list[str], bool]:
    """Audit keys from ``path``; a new key is written there (mode 0600) if it does not exist.

    Returns the keys and whether the file was created now.
    """
    if path.exists():
        return _read_key_file(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    # O_EXCL: two processes starting at once must not both write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path), False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return [key], True


def _read_key_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        # Not the decoder's message: it quotes a byte of what may be the secret.
        raise AuditKeyError("the audit key file is not ASCII text") from None
    return parse_keys(text)


class AuditSigner:
    """The audit keys by ID: the first signs new entries, any of them checks old ones."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise AuditKeyError("no audit key given")
        self._keys = {key_id(k): k.encode("ascii") for k in keys}
        self.key_id = key_id(keys[0])

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    def sign(self, entry_hash: str) -> tuple[str, str]:
        """``(key_id, mac)`` for an entry's hash, with the signing key."""
        return self.key_id, _mac(self._keys[self.key_id], self.key_id, entry_hash)

    def check(self, kid: str, entry_hash: str, mac: str) -> bool:
        """True when ``mac`` is the MAC of ``entry_hash`` by the key ``kid`` (False if unknown)."""
        key = self._keys.get(kid)
        if key is None:
            return False
        return hmac.compare_digest(_mac(key, kid, entry_hash), mac)

    def __repr__(self) -> str:
        # The keys themselves must never reach a log line or a traceback.
        return f"AuditSigner(key_ids={list(self._keys)!r})"


def _mac(key: bytes, kid: str, entry_hash: str) -> str:
    # The key ID is inside the MAC so a row cannot be relabelled to claim another key.
    material = _MAC_PREFIX + kid.encode("ascii") + b"\x1f" + entry_hash.encode("ascii")
    return hmac.new(key, material, hashlib.sha256).hexdigest()


def canonical(details: dict[str, Any]) -> str:
    return json.dumps(
        details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def entry_hash(
    *, prev_hash: str, seq: int, at: datetime, actor: str, action: str, subject: str, details: str
) -> str:
    material = "\x1f".join(
        [prev_hash, str(seq), _as_utc(at).isoformat(), actor, action, subject, details]
    ).encode("utf-8")
    return hashlib.sha256(material).hexdigest()


def product_of(details: dict[str, Any]) -> str | None:
    """The ``product_id`` column of an entry: its details' product, so exports filter in SQL."""
    product = details.get("product")
    return product if isinstance(product, str) and len(product) <= 64 else None


def append(
    session: Session,
    signer: AuditSigner,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the chain; returns a copy of what was written."""
    write_deferred(session)  # entries deferred earlier in this transaction come first
    event = Event(at=at, actor=actor, action=action, subject=subject, details=details or {})
    return AuditEntry(**_append_rows(session, signer, [event])[-1])


@dataclass(frozen=True)
class Event:
    """One entry for ``append_many``: what ``append`` takes, as a value."""

    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


def append_many(session: Session, signer: AuditSigner, events: Sequence[Event]) -> int:
    """Append ``events`` in order, as ``append`` would one by one: the same IDs, hashes and
    MACs, so ``verify`` cannot tell the difference. One head lock, one multi-row insert and one
    head update for the whole batch (a 10,000-seat reclaim scan writes 10,000 entries).

    Returns the ID of the last entry (the head's ``last_id``)."""
    write_deferred(session)  # entries deferred earlier in this transaction come first
    rows = _append_rows(session, signer, events)
    if rows:
        return int(rows[-1]["id"])
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).one()
    return head.last_id


def _append_rows(
    session: Session, signer: AuditSigner, events: Sequence[Event]
) -> list[dict[str, Any]]:
    """The one writer of the chain: lock the head, hash, sign and insert ``events`` in order;
    returns the rows written."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    if not events:
        return []
    # Anything pending goes first, as with append (which flushes each entry in turn).
    session.flush()
    rows: list[dict[str, Any]] = []
    lines = session.info.setdefault(COMMITTED_EVENTS, [])
    prev, seq = head.hash, head.last_id
    for event in events:
        seq += 1
        body = canonical(event.details)
        digest = entry_hash(
            prev_hash=prev,
            seq=seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=body,
        )
        kid, mac = signer.sign(digest)
        row = {
            "id": seq,
            "at": event.at,
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "details": body,
            "prev_hash": prev,
            "hash": digest,
            "key_id": kid,
            "mac": mac,
            "product_id": product_of(event.details),
        }
        rows.append(row)
        lines.append(_event_line(seq, event.action, event.actor, event.subject, event.details))
        prev = digest
    # Core executemany: the ORM would flush one INSERT per entry.
    session.execute(insert(AuditEntry.__table__), rows)  # type: ignore[attr-defined]  # SQLModel sets it
    # Through the ORM object, so a later append in this session sees the new head.
    head.last_id = seq
    head.hash = prev
    session.add(head)
    session.flush()
    return rows


DEFERRED = "licensebot.audit.deferred"


def defer(
    session: Session,
    signer: AuditSigner,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> None:
    """``append``, but written with the transaction's other deferred entries in one
    ``append_many``: when the transaction commits (``Database.transaction`` calls
    ``write_deferred``), or first thing in a later ``append``/``append_many``, so the chain's
    order is always the order of the calls. A click that writes three entries then takes the
    head once, inserts once and updates the head once, instead of three times each.

    The head's lock is still taken at the first deferred entry, as ``append`` takes it: code
    after it may rely on holding it (``seat_alerts.evaluate`` does), and the order in which a
    transaction takes its locks stays what it was (no new deadlock). SQLite needs no lock
    here: BEGIN IMMEDIATE already serializes writers."""
    pending: tuple[AuditSigner, list[Event]] | None = session.info.get(DEFERRED)
    if pending is None:
        if session.get_bind().dialect.name != "sqlite":
            session.exec(select(AuditHead.id).where(AuditHead.id == 1).with_for_update()).one()
        pending = session.info[DEFERRED] = (signer, [])
    pending[1].append(Event(at, actor, action, subject, details or {}))


def write_deferred(session: Session) -> None:
    """Append the entries ``defer`` has queued in this session (if any) now."""
    pending: tuple[AuditSigner, list[Event]] | None = session.info.pop(DEFERRED, None)
    if pending is not None and pending[1]:
        _append_rows(session, *pending)


COMMITTED_EVENTS = "licensebot.audit.events"
# Details worth a log line; free text (justifications, reasons) stays in the audit log only.
_LOGGED_DETAILS = ("product", "step", "for", "assignment", "request", "role", "added", "rotated")


def _event_line(
    entry_id: int | None, action: str, actor: str, subject: str, details: dict[str, Any]
) -> str:
    fields = [f"event={action}", f"actor={actor}", f"subject={subject}"]
    if subject.startswith("request:"):
        fields.append(f"request={subject.removeprefix('request:')}")
    fields += [f"{k}={details[k]}" for k in _LOGGED_DETAILS if k in details]
    fields.append(f"audit_id={entry_id}")
    return " ".join(fields)


# --- verification -----------------------------------------------------------------------------

Problem = Literal[
    "edited", "deleted", "inserted", "reordered", "signature", "unknown_key", "unsigned", "head"
]


@dataclass(frozen=True)
class ChainReport:
    entries: int  # entries that verified, in order, before the first bad one (or all of them)
    head: str  # hash of the last entry that verified (GENESIS for none)
    first_bad: int | None = None  # id of the first entry that does not verify
    kind: Problem | None = None
    problem: str | None = None  # one sentence naming the entry and what is wrong with it

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(session: Session, signer: AuditSigner, batch: int = 1000) -> ChainReport:
    """Walk the chain from the start; report the first entry that is not as it was written.

    Reads the head first and checks the entries up to it, so entries appended while this runs
    are neither checked nor mistaken for insertions.
    """
    # Column queries throughout: an AuditHead already in the session could be stale.
    head = session.exec(select(AuditHead.last_id, AuditHead.hash).where(AuditHead.id == 1)).first()
    if head is None:
        # Every schema has it from its first migration on; only a hand-made DELETE removes it.
        return ChainReport(
            0, GENESIS, None, "head", "the chain head (audit_head) is missing: it was deleted"
        )
    last_id, head_hash = head
    prev = GENESIS
    expected = 1
    for entry in iter_entries(session, batch=batch, up_to=last_id):
        assert entry.id is not None
        found = _check(session, signer, entry, expected=expected, prev=prev)
        if found is not None:
            kind, problem = found
            # A gap names the missing entry; anything else the entry found wanting.
            bad = expected if kind == "deleted" and entry.id > expected else entry.id
            return ChainReport(expected - 1, prev, bad, kind, problem)
        prev = entry.hash
        expected += 1
    count = expected - 1
    if count < last_id:
        # The newest entries are gone while audit_head still counts them.
        return ChainReport(
            count,
            prev,
            count + 1,
            "deleted",
            f"entry {count + 1} is missing: the chain head records {last_id} entries but the "
            f"log ends at entry {count} (entries deleted)",
        )
    if prev != head_hash:
        return ChainReport(
            count,
            prev,
            last_id,
            "head",
            f"the chain head (audit_head) does not match entry {last_id}: it was altered",
        )
    # Rows past the head were written without taking the head lock, i.e. not by append. The
    # highest ID is read before the head again: a genuine append commits both at once.
    beyond = session.exec(select(func.min(AuditEntry.id)).where(col(AuditEntry.id) > last_id)).one()
    if beyond is not None:
        # A column query, not session.get: that would hand back the head read above.
        now_last = session.exec(select(AuditHead.last_id).where(AuditHead.id == 1)).first() or 0
        if beyond > now_last:
            return ChainReport(
                count,
                prev,
                beyond,
                "inserted",
                f"entry {beyond} was inserted: it lies past the chain head (entry {now_last})",
            )
    return ChainReport(count, prev)


def _check(
    session: Session, signer: AuditSigner, entry: AuditEntry, *, expected: int, prev: str
) -> tuple[Problem, str] | None:
    """What is wrong with ``entry`` at position ``expected`` after a chain ending in ``prev``."""
    assert entry.id is not None
    n = entry.id
    if n < expected:
        return "inserted", f"entry {n} was inserted before entry {expected}, the first one"
    if n != expected:
        # IDs are dense (each append takes head.last_id + 1): a gap is a deletion.
        after = f"jumps from entry {expected - 1} to" if expected > 1 else "starts at"
        return "deleted", f"entry {expected} is missing: the log {after} entry {n} (deleted)"
    if entry.prev_hash != prev:
        return _broken_link(session, signer, entry, n)
    content_hash = entry_hash(
        prev_hash=prev,
        seq=n,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        details=entry.details,
    )
    if entry.hash != content_hash:
        return "edited", f"entry {n}: content edited (its hash does not match its content)"
    if not entry.key_id or not entry.mac:
        return "unsigned", (
            f"entry {n} is unsigned: written before audit signing was enabled, or inserted by hand"
        )
    if not signer.knows(entry.key_id):
        return "unknown_key", (
            f"entry {n} is signed with audit key id {entry.key_id}, which is not among the "
            f"configured audit keys ({', '.join(signer.key_ids)}); add that key to "
            "LICENSEBOT_AUDIT_KEYS after the signing key"
        )
    if not signer.check(entry.key_id, entry.hash, entry.mac):
        return "signature", (
            f"entry {n}: signature invalid (key id {entry.key_id}): the entry and its hash "
            "were rewritten"
        )
    if entry.product_id != product_of(_details(entry)):
        return "edited", f"entry {n}: content edited (product_id does not match its details)"
    return None


def _broken_link(
    session: Session, signer: AuditSigner, entry: AuditEntry, n: int
) -> tuple[Problem, str]:
    """Entry ``n`` does not follow entry ``n - 1``: find out where it came from."""
    genuine = bool(entry.key_id and entry.mac and signer.check(entry.key_id, entry.hash, entry.mac))
    if not genuine:
        return "inserted", (
            f"entry {n} does not follow entry {n - 1} and carries no valid signature "
            "(inserted or forged)"
        )
    copy_of = session.exec(
        select(AuditEntry.id).where(AuditEntry.hash == entry.hash, col(AuditEntry.id) < n)
    ).first()
    if copy_of is not None:
        return "inserted", f"entry {n} is a copy of entry {copy_of} (inserted)"
    # A genuine entry's prev_hash is the hash of the entry written just before it.
    origin = session.exec(
        select(AuditEntry.id).where(AuditEntry.hash == entry.prev_hash).order_by(col(AuditEntry.id))
    ).first()
    if origin is None:
        if entry.prev_hash == GENESIS:
            return "inserted", (
                f"entry {n} was written as the first entry: the entries before it were inserted"
            )
        return "deleted", (
            f"entry {n} does not follow entry {n - 1}: the entry written before it is gone "
            "(deleted)"
        )
    if origin > n:
        return "reordered", (
            f"entry {n} is out of order: it was written after entry {origin}, which now comes "
            "after it (entries reordered)"
        )
    return "inserted", (
        f"entry {n} was written right after entry {origin}: the entries between them were inserted"
    )


def sign_legacy(session: Session, signer: AuditSigner) -> int:
    """Sign the unsigned entries at the start of the log (written before signing existed).

    Only an unbroken prefix is signed, and only when its plain hash chain holds and the signed
    entries after it verify: an unsigned entry after a signed one was inserted, and signing it
    would launder it. Call inside a write transaction; returns how many entries it signed.
    """
    # Hold the head lock so no append slips in between the check and the signing.
    session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    prev = GENESIS
    legacy: list[tuple[int, str]] = []
    for entry in iter_entries(session):
        assert entry.id is not None
        if entry.key_id and entry.mac:
            break
        problem = _check(session, signer, entry, expected=len(legacy) + 1, prev=prev)
        if problem is not None and problem[0] != "unsigned":
            raise AuditKeyError(f"not signing the legacy entries: {problem[1]}")
        legacy.append((entry.id, entry.hash))
        prev = entry.hash
    if not legacy:
        return 0
    for entry_id, digest in legacy:
        kid, mac = signer.sign(digest)
        session.exec(
            update(AuditEntry).where(col(AuditEntry.id) == entry_id).values(key_id=kid, mac=mac)
        )
    session.flush()
    report = verify(session, signer)
    if not report.intact:
        # The rest of the chain must hold too, or signing the prefix would hide nothing but
        # prove nothing either; the caller's transaction rolls the signatures back.
        raise AuditKeyError(f"not signing the legacy entries: {report.problem}")
    return len(legacy)


def iter_entries(
    session: Session,
    batch: int = 1000,
    *,
    up_to: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    product: str | None = None,
) -> Iterator[AuditEntry]:
    """Entries oldest first, fetched in batches, filtered in SQL.

    ``since`` is inclusive and ``until`` exclusive; both must be timezone-aware.
    """
    query = select(AuditEntry)
    if up_to is not None:
        query = query.where(col(AuditEntry.id) <= up_to)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= _as_utc(since))
    if until is not None:
        query = query.where(col(AuditEntry.at) < _as_utc(until))
    if actor is not None:
        query = query.where(col(AuditEntry.actor) == actor)
    if product is not None:
        query = query.where(col(AuditEntry.product_id) == product)
    # Keyset pagination on the ID; the first batch has no lower bound, so that a row with an ID
    # below 1 (never written by append) is seen too.
    page = query
    while True:
        rows = session.exec(page.order_by(col(AuditEntry.id)).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        assert last is not None
        page = query.where(col(AuditEntry.id) > last)


def _details(entry: AuditEntry) -> dict[str, Any]:
    try:
        value = json.loads(entry.details)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _as_utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL hands back the session's zone.
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)

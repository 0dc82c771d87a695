"""``/license audit``: the latest audit entries about a person or a product.

Only ``auditor`` and ``it_admin`` holders may look, decided from the database at the moment of
asking. What counts as "about":

- a person: entries they did (actor), entries about them (subject ``user:<id>``, or their ID for
  role changes), requests made for them (details ``for``), and every entry of a request they
  are the requester of (its approvals, denial, waitlisting);
- a product: entries whose details name it (the ``product_id`` column), entries about it
  (subject ``product:<id>``), and every entry of a request for it.

The log never holds a license key, so neither does anything returned here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast, literal, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from bot import roles
from bot.catalog import suggest_in
from bot.directory import looks_like_user_id
from bot.errors import InputError, NotAllowed, UnknownProduct
from bot.runtime import Runtime
from storage.models import AuditEntry, LicenseRequest, Product

VIEWER_ROLES = ("auditor", "it_admin")
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class AuditLine:
    """One audit entry as shown to an auditor."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


def recent(
    rt: Runtime,
    *,
    viewer: str,
    user: str | None = None,
    product: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[AuditLine]:
    """The newest ``limit`` entries about ``user`` or ``product`` (exactly one), newest first.

    Raises NotAllowed unless ``viewer`` is an auditor or an IT admin, before looking at anything
    else, so a refusal says nothing about what exists.
    """
    if (user is None) == (product is None):
        raise ValueError("give exactly one of user or product")
    with rt.db.read() as session:
        if not any(roles.has_role(session, viewer, role, rt.admins) for role in VIEWER_ROLES):
            raise NotAllowed(
                "You can't view the audit log: only auditors and IT admins can. Ask IT for "
                "the auditor role if you need it."
            )
        about: ColumnElement[bool]
        if user is not None:
            if not looks_like_user_id(user):
                raise InputError(f"`{user[:40]}` is not a Slack user; mention them as @name.")
            requests = select(_request_subject()).where(col(LicenseRequest.requester_id) == user)
            about = or_(
                col(AuditEntry.actor) == user,
                col(AuditEntry.subject).in_([f"user:{user}", user]),
                # details are canonical JSON (no spaces), so this matches only a "for" field.
                col(AuditEntry.details).contains(f'"for":{json.dumps(user)}', autoescape=True),
                col(AuditEntry.subject).in_(requests),
            )
        else:
            assert product is not None
            wanted = product.strip().lower()
            # PostgreSQL refuses a NUL in any text parameter; no product ID can hold one anyway.
            if "\x00" in wanted or session.get(Product, wanted) is None:
                shown = wanted.replace("\x00", "")
                raise UnknownProduct(shown, suggest_in(session, shown, active_only=False))
            requests = select(_request_subject()).where(col(LicenseRequest.product_id) == wanted)
            about = or_(
                col(AuditEntry.product_id) == wanted,
                col(AuditEntry.subject) == f"product:{wanted}",
                col(AuditEntry.subject).in_(requests),
            )
        rows = session.exec(
            select(AuditEntry).where(about).order_by(col(AuditEntry.id).desc()).limit(limit)
        ).all()
    return [_line(row) for row in rows]


def _request_subject() -> ColumnElement[str]:
    # The subject the request services write: "request:<id>".
    return literal("request:", String) + cast(col(LicenseRequest.id), String)


def _line(entry: AuditEntry) -> AuditLine:
    assert entry.id is not None
    details = json.loads(entry.details)
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL the session's zone.
    at = entry.at.replace(tzinfo=UTC) if entry.at.tzinfo is None else entry.at.astimezone(UTC)
    return AuditLine(
        id=entry.id,
        at=at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        details=details if isinstance(details, dict) else {"details": details},
    )

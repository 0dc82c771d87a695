"""Roles (``it_admin``, ``auditor``): granted in the database, plus admins named in settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot.errors import InputError
from bot.runtime import Runtime
from storage import audit
from storage.models import RoleGrant

ROLES = ("it_admin", "auditor")


def _check(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"Unknown role `{role}`. Roles are: {', '.join(ROLES)}.")


def has_role(session: Session, user_id: str, role: str, admins: frozenset[str]) -> bool:
    if role == "it_admin" and user_id in admins:
        return True
    return session.get(RoleGrant, (user_id, role)) is not None


def holders(session: Session, role: str, admins: frozenset[str]) -> list[str]:
    granted = session.exec(
        select(RoleGrant.user_id).where(RoleGrant.role == role).order_by(col(RoleGrant.user_id))
    ).all()
    users = set(granted)
    if role == "it_admin":
        users |= admins
    return sorted(users)


def grant(rt: Runtime, user_id: str, role: str, *, actor: str) -> bool:
    """Grant a role; False if the user already had it (nothing changes then)."""
    _check(role)
    now = rt.clock.now()
    with rt.db.transaction() as session:
        if session.get(RoleGrant, (user_id, role)) is not None:
            return False
        session.add(RoleGrant(user_id=user_id, role=role, granted_by=actor, granted_at=now))
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="role.granted",
            subject=user_id,
            details={"role": role},
        )
    return True


def revoke(rt: Runtime, user_id: str, role: str, *, actor: str) -> bool:
    """Revoke a role; False if the user did not have it."""
    _check(role)
    now = rt.clock.now()
    with rt.db.transaction() as session:
        row = session.get(RoleGrant, (user_id, role))
        if row is None:
            return False
        session.delete(row)
        audit.append(
            session,
            rt.audit_keys,
            at=now,
            actor=actor,
            action="role.revoked",
            subject=user_id,
            details={"role": role},
        )
    return True


@dataclass(frozen=True)
class RoleHolder:
    user_id: str
    role: str
    source: str  # "granted" or "LICENSEBOT_ADMINS"


def list_roles(rt: Runtime) -> list[RoleHolder]:
    with rt.db.read() as session:
        rows = session.exec(select(RoleGrant).order_by(col(RoleGrant.role), col(RoleGrant.user_id)))
        out = [RoleHolder(r.user_id, r.role, "granted") for r in rows]
    granted_admins = {h.user_id for h in out if h.role == "it_admin"}
    out += [
        RoleHolder(u, "it_admin", "LICENSEBOT_ADMINS") for u in sorted(rt.admins - granted_admins)
    ]
    return out


def it_admins(rt: Runtime) -> list[str]:
    with rt.db.read() as session:
        return holders(session, "it_admin", rt.admins)

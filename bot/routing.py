"""Who approves a step: the catalog's ``approval`` entries resolved against the directory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot import roles
from storage.models import GroupMember, Person


@dataclass(frozen=True)
class StepRoute:
    approvers: list[str]
    why: str  # empty unless the step fell back to IT; then it says why (shown on the card)


def describe(spec: str) -> str:
    """A step as a person reads it: ``manager``, ``it-team``, ``role:it_admin``, ``<@U…>``."""
    if spec == "manager":
        return "manager"
    if spec.startswith("role:"):
        return spec.removeprefix("role:")
    if spec[:1] in "UW" and spec.isupper():
        return f"<@{spec}>"
    return spec


def resolve(
    session: Session, spec: str, *, requester: str, excluded: set[str], admins: frozenset[str]
) -> StepRoute:
    """The approvers of one step; never anyone in ``excluded`` (the requester and the asker)."""
    why = ""
    if spec == "manager":
        person = session.get(Person, requester)
        manager = person.manager_slack_user_id if person else None
        if manager:
            candidates = [manager]
        else:
            candidates = roles.holders(session, "it_admin", admins)
            why = f"<@{requester}> has no manager in the directory, so IT approves this step."
    elif spec.startswith("role:"):
        candidates = roles.holders(session, spec.removeprefix("role:"), admins)
    elif spec[:1] in "UW" and spec.isupper():
        candidates = [spec]
    else:
        candidates = list(
            session.exec(
                select(GroupMember.user_id)
                .where(GroupMember.group_name == spec)
                .order_by(col(GroupMember.user_id))
            ).all()
        )
    approvers = [u for u in dict.fromkeys(candidates) if u not in excluded]
    if not approvers:
        approvers = [u for u in roles.holders(session, "it_admin", admins) if u not in excluded]
        why = (
            f"Nobody else could approve the “{describe(spec)}” step (requesters never approve "
            "their own request), so it went to IT."
        )
    return StepRoute(approvers=approvers, why=why)

"""Running the pull connectors: vendor activity -> usage signals, page by page.

Each page is stored in one transaction with the connector's new cursor (``connector_state``),
so a pull stopped half-way keeps what it read and the next pull goes on from there. The cursor
is moved with a compare-and-set: if another pull of the same connector (the CLI while the job
runs) moved it first, this one stops instead of storing the same page twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot import usage
from bot.connectors import Page, UsageConnector, build
from bot.errors import ConnectorError
from bot.runtime import Runtime
from storage import audit, job_runs
from storage.models import ConnectorState, Person, Product

log = logging.getLogger("licensebot.connectors")

JOB_ID = "usage-pull"
SYSTEM_ACTOR = "licensebot"
_TIMEOUT = httpx.Timeout(30.0)


@dataclass
class PullResult:
    connector: str
    events: int = 0  # log events read
    uses: int = 0  # of which uses of an app (successful sign-ins)
    recorded: int = 0  # signals that moved a (product, person) forward
    unknown_apps: int = 0  # uses of apps no product claims (usage_source)
    unknown_users: int = 0  # uses by logins not in the directory (or shared by several people)
    pages: int = 0  # pages stored
    error: str | None = None  # why the pull stopped early; the pages before it are stored

    def line(self) -> str:
        return (
            f"{self.connector}: {self.events} events read, {self.recorded} signals recorded, "
            f"{self.unknown_apps} uses of apps no product claims, "
            f"{self.unknown_users} uses by people not in the directory"
        )


class _Overtaken(Exception):
    """Another pull moved the cursor since this one read it (rolls the page back)."""


def pull(rt: Runtime, connector: UsageConnector, *, actor: str) -> PullResult:
    """Read everything after the connector's cursor and record it; never raises ConnectorError
    (the result carries it), so one failing connector does not stop the others."""
    name = connector.name
    now = rt.clock.now()
    with rt.db.read() as session:
        state = session.get(ConnectorState, name)
        cursor = state.cursor if state is not None and state.cursor else None
        exists = state is not None
        apps = _apps(session, name)
        people = _people(session)
    result = PullResult(name)
    try:
        for page in connector.pages(cursor, now=now):
            if page.events == 0 and page.cursor == cursor:
                continue  # caught up: nothing to store
            signals, counts = _map(page, apps, people)
            try:
                with rt.db.transaction() as session:
                    _move_cursor(session, name, cursor, page.cursor, exists=exists, now=now)
                    recorded = usage.upsert_signals(
                        session, signals, source=f"connector:{name}", now=rt.clock.now()
                    )
                    if page.events:
                        audit.append(
                            session,
                            rt.audit_keys,
                            at=rt.clock.now(),
                            actor=actor,
                            action="usage.pulled",
                            subject=f"connector:{name}",
                            details={"events": page.events, "recorded": recorded, **counts},
                        )
            except _Overtaken:
                raise ConnectorError(
                    f"another pull of {name} moved on at the same time; this one stopped "
                    "(the other goes on from there)."
                ) from None
            cursor, exists = page.cursor, True
            result.pages += 1
            result.events += page.events
            result.recorded += recorded
            result.uses += counts["uses"]
            result.unknown_apps += counts["unknown_apps"]
            result.unknown_users += counts["unknown_users"]
    except ConnectorError as exc:
        result.error = exc.message
    log.info(
        "event=usage_pull connector=%s pages=%d events=%d recorded=%d unknown_apps=%d "
        "unknown_users=%d stopped=%s",
        name,
        result.pages,
        result.events,
        result.recorded,
        result.unknown_apps,
        result.unknown_users,
        "yes" if result.error else "no",
    )
    return result


def pull_all(rt: Runtime, *, actor: str) -> list[PullResult]:
    """Pull every configured connector in turn (none configured: an empty list); waits go
    through ``rt.sleep``."""
    if not rt.policy.connectors:
        return []
    # No redirects: a redirect could take the token to another host.
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False) as client:
        return [
            pull(rt, build(config, client=client, clock=rt.clock, sleep=rt.sleep), actor=actor)
            for config in rt.policy.connectors
        ]


def run_hourly(rt: Runtime, now: datetime) -> bool:
    """The ``usage-pull`` job: every configured connector, once per hour.

    The hour is claimed before pulling (a pull spans many transactions): a second process
    firing the same hour does nothing. A pull that stops early raises ConnectorError after the
    others ran; its stored pages stay, and the next hour resumes from its cursor.
    """
    if not rt.policy.connectors:
        return False
    with rt.db.transaction() as session:
        if not job_runs.claim(session, JOB_ID, now.strftime("%Y-%m-%dT%H"), now=now):
            return False
    failed = [r for r in pull_all(rt, actor=SYSTEM_ACTOR) if r.error]
    if failed:
        raise ConnectorError("; ".join(f"{r.connector}: {r.error}" for r in failed))
    return True


# --- storing ------------------------------------------------------------------------------------


def _move_cursor(
    session: Session, name: str, old: str | None, new: str, *, exists: bool, now: datetime
) -> None:
    if not exists:
        try:
            with session.begin_nested():
                session.add(ConnectorState(name=name, cursor=new, updated_at=now))
        except IntegrityError:  # another pull stored its first page first
            raise _Overtaken from None
        return
    table = ConnectorState.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    moved = session.execute(
        update(table)
        .where(table.c.name == name, table.c.cursor == (old or ""))
        .values(cursor=new, updated_at=now)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
        raise _Overtaken


def _map(
    page: Page, apps: Mapping[str, list[str]], people: Mapping[str, str | None]
) -> tuple[dict[tuple[str, str], datetime], dict[str, int]]:
    signals: dict[tuple[str, str], datetime] = {}
    unknown_apps = unknown_users = 0
    for activity in page.activities:
        products = apps.get(activity.app_id)
        if not products:
            unknown_apps += 1
            continue
        user = people.get(activity.login.strip().lower())
        if user is None:
            unknown_users += 1
            continue
        for product_id in products:
            key = (product_id, user)
            signals[key] = max(signals.get(key, activity.at), activity.at)
    counts = {
        "uses": len(page.activities),
        "unknown_apps": unknown_apps,
        "unknown_users": unknown_users,
    }
    return signals, counts


def _apps(session: Session, connector: str) -> dict[str, list[str]]:
    """The vendor's app id -> the products claiming it (``usage_source: <connector>:<id>``)."""
    table = Product.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    prefix = f"{connector}:"
    rows = session.execute(
        select(table.c.id, table.c.usage_source).where(
            func.substr(table.c.usage_source, 1, len(prefix)) == prefix
        )
    ).all()
    found: dict[str, list[str]] = {}
    for product_id, source in rows:
        found.setdefault(source[len(prefix) :], []).append(product_id)
    return found


def _people(session: Session) -> dict[str, str | None]:
    """Lower-cased email -> Slack user ID (None when several people share the email)."""
    # Two narrow columns of the directory in one query: thousands of people, not millions.
    table = Person.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    found: dict[str, str | None] = {}
    for user_id, email in session.execute(select(table.c.slack_user_id, table.c.email)).all():
        key = email.strip().lower()
        found[key] = None if key in found else user_id
    return found

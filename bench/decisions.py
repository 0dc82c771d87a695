"""Decisions per second: saturated Approve clicks against the same rows written raw.

The bot: ``THREADS`` clients send signed Approve clicks to ``licensebot serve`` as fast as it
answers; each click decides the only step of a seeded "ide" request, so it commits its full
work in one transaction (decision, request update, key assignment, three audit entries with
the hash-chain lock, two outbox rows). Counted: decisions committed per second.

The ceiling: the same rows for other seeded requests, written with SQLAlchemy core, one
transaction per decision, by as many threads, in this process on the same database.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench import serving
from bench.context import Context
from bench.report import Figure, Sample
from bot.runtime import Runtime
from storage import audit
from storage.models import (
    Assignment,
    AuditEntry,
    AuditHead,
    Decision,
    LicenseKey,
    LicenseRequest,
    OutboxMessage,
)

THREADS = 8


def _count(rt: Runtime, model: Any) -> int:
    with rt.db.engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(model.__table__)).scalar_one()
        )


def _audit(
    conn: sa.Connection,
    rt: Runtime,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any],
) -> None:
    """``storage.audit.append`` in core: lock the head, chain and sign, insert, move the head."""
    head_t = AuditHead.__table__  # type: ignore[attr-defined]  # SQLModel table
    entry_t = AuditEntry.__table__  # type: ignore[attr-defined]
    head = conn.execute(
        sa.select(head_t.c.last_id, head_t.c.hash).where(head_t.c.id == 1).with_for_update()
    ).one()
    body = audit.canonical(details)
    seq = head.last_id + 1
    digest = audit.entry_hash(
        prev_hash=head.hash,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=body,
    )
    kid, mac = rt.audit_keys.sign(digest)
    conn.execute(
        sa.insert(entry_t).values(
            id=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=body,
            prev_hash=head.hash,
            hash=digest,
            key_id=kid,
            mac=mac,
            product_id=audit.product_of(details),
        )
    )
    conn.execute(sa.update(head_t).where(head_t.c.id == 1).values(last_id=seq, hash=digest))


def _raw_decision(rt: Runtime, request_id: int, approver: str, key_id: int) -> None:
    req_t = LicenseRequest.__table__  # type: ignore[attr-defined]  # SQLModel table
    dec_t = Decision.__table__  # type: ignore[attr-defined]
    asg_t = Assignment.__table__  # type: ignore[attr-defined]
    key_t = LicenseKey.__table__  # type: ignore[attr-defined]
    out_t = OutboxMessage.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    subject = f"request:{request_id}"
    with rt.db.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, as every bot transaction
        req = conn.execute(
            sa.select(req_t.c.requester_id, req_t.c.product_id)
            .where(req_t.c.id == request_id)
            .with_for_update()
        ).one()
        conn.execute(
            sa.insert(dec_t).values(
                request_id=request_id,
                step=0,
                decider_id=approver,
                outcome="approved",
                reason="",
                decided_at=now,
            )
        )
        _audit(
            conn,
            rt,
            at=now,
            actor=approver,
            action="step.approved",
            subject=subject,
            details={"step": 1, "of": 1, "reason": ""},
        )
        conn.execute(
            sa.update(req_t)
            .where(req_t.c.id == request_id)
            .values(status="approved", closed_at=now, updated_at=now)
        )
        _audit(
            conn,
            rt,
            at=now,
            actor=approver,
            action="request.approved",
            subject=subject,
            details={"product": req.product_id},
        )
        assignment_id = conn.execute(
            sa.insert(asg_t)
            .values(
                product_id=req.product_id,
                user_id=req.requester_id,
                request_id=request_id,
                key_id=key_id,
                assigned_at=now,
                release_reason="",
            )
            .returning(asg_t.c.id)
        ).scalar_one()
        conn.execute(sa.update(key_t).where(key_t.c.id == key_id).values(handed_out_at=now))
        _audit(
            conn,
            rt,
            at=now,
            actor="licensebot",
            action="key.assigned",
            subject=f"user:{req.requester_id}",
            details={
                "product": req.product_id,
                "request": request_id,
                "assignment": assignment_id,
                "key_id": key_id,
            },
        )
        conn.execute(
            sa.insert(out_t),
            [
                {
                    "kind": kind,
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "last_error": "",
                }
                for kind, payload in (
                    ("step_closed", {"request_id": request_id, "step": 0}),
                    ("request_approved", {"request_id": request_id}),
                )
            ],
        )


def _raw(rt: Runtime, work: list[tuple[int, str, int]]) -> float:
    """Decisions per second of the core writes, ``THREADS`` at a time."""
    todo = list(work)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                request_id, approver, key_id = todo.pop()
            _raw_decision(rt, request_id, approver, key_id)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(work) / (time.perf_counter() - start)


def run(ctx: Context) -> list[Figure]:
    per_run = ctx.scale(600, 20)
    teams = 2 * per_run * ctx.repeat
    bot_rates: list[float] = []
    raw_rates: list[float] = []
    with ctx.database("decisions") as url:
        env = serving.bench_settings(url)
        rt = serving.runtime(env)
        sim = serving.slack_sim(teams)
        try:
            # No cards: a decision's work is the same, and nothing waits on the Slack side.
            serving.seed(rt, teams=teams, tools=0, holders=0, cards=False)
            seeded = serving.seeded(rt, teams)
            key_t = LicenseKey.__table__  # type: ignore[attr-defined]  # SQLModel table
            with rt.db.engine.connect() as conn:
                # The raw writer takes keys from the top, the bot hands out the lowest free.
                raw_keys = list(
                    conn.execute(sa.select(key_t.c.id).order_by(key_t.c.id.desc())).scalars()
                )
            build = serving.Requests(sim)
            with serving.bot_process(
                env, sim, ctx.workdir / "decisions-bot.log", deploy=ctx.deploy
            ) as bot:
                for r in range(ctx.repeat):
                    chunk = seeded.pending[2 * r * per_run : 2 * (r + 1) * per_run]
                    clicks, raws = chunk[::2], chunk[1::2]
                    bodies = [build.approve(a, rid, ch, ts) for rid, _, a, ch, ts in clicks]
                    before = _count(rt, Decision)
                    seconds, _ = serving.closed_loop(
                        bot.url + "/slack/events", bodies, threads=THREADS
                    )
                    decided = _count(rt, Decision) - before
                    bot_rates.append(decided / seconds)
                    serving.wait_for_outbox(rt)
                    work = [(rid, approver, raw_keys.pop(0)) for rid, _, approver, _, _ in raws]
                    raw_rates.append(_raw(rt, work))
        finally:
            sim.stop()
            rt.db.dispose()
    return [
        Figure(
            "decisions per second (Approve clicks)",
            Sample(tuple(bot_rates)),
            Sample(tuple(raw_rates)),
            "decisions/s",
            at_least=0.5,
            note=f"{per_run} clicks by {THREADS} clients per repetition; ceiling: the same "
            "rows in SQLAlchemy core, one transaction each",
        )
    ]

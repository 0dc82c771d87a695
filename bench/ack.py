"""Ack latency of the bot as deployed, under a realistic mix, against a bare ack-only Bolt app.

The mix, in turn: ``/license request toolN`` (a new pending request), Approve on a seeded
request's card (the step is decided and a key handed out), Reveal on a held key (decrypt,
audit, ``views.open``), and an App Home open. Open-loop at a fixed rate; latency from each
request's due time.

Figures: the p99 at 100 req/s against the bare app's p99 at 100 req/s (at most 3 times); and at
300 req/s two absolute limits: the slowest response (≤ 3 s, Slack's deadline) and the errors
(none: a non-200, no answer, or an Approve click that did not decide its step).
"""

from __future__ import annotations

import itertools
import sys

import sqlalchemy as sa

from bench import serving
from bench.context import Context
from bench.report import Figure, Sample
from bot.runtime import Runtime
from storage.models import Decision

KINDS = ("slash", "approve", "reveal", "home")
LOW, HIGH = 100.0, 300.0


def _decisions(rt: Runtime) -> int:
    table = Decision.__table__  # type: ignore[attr-defined]  # SQLModel table
    with rt.db.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def run(ctx: Context) -> list[Figure]:
    low_count = ctx.scale(1500, 40)  # 15 s at 100/s
    high_count = ctx.scale(3000, 60)  # 10 s at 300/s
    approves_per_repeat = (low_count + high_count) // len(KINDS) + 2
    teams = max(approves_per_repeat * ctx.repeat, high_count // len(KINDS) + 1)
    holders = ctx.scale(300, 10)
    bot_p99: list[float] = []
    bare_p99: list[float] = []
    high_max: list[float] = []
    high_errors: list[float] = []
    low_errors = 0
    with ctx.database("ack") as url:
        env = serving.bench_settings(url)
        rt = serving.runtime(env)
        sim = serving.slack_sim(teams)
        try:
            serving.seed(rt, teams=teams, tools=2 * ctx.repeat, holders=holders)
            with (
                serving.bot_process(
                    env, sim, ctx.workdir / "ack-bot.log", deploy=ctx.deploy
                ) as bot,
                serving.bare_process(ctx.workdir / "ack-bare.log") as bare,
            ):
                serving.wait_for_outbox(rt)
                seeded = serving.seeded(rt, teams)
                build = serving.Requests(sim)
                pending = iter(seeded.pending)

                def mix(product: str, *, bare_only: bool = False) -> serving.Make:
                    def make(k: int) -> tuple[str, serving.Body]:
                        kind = KINDS[k % len(KINDS)]
                        n = k // len(KINDS)
                        if kind == "slash":
                            text = f"request {product} bench"
                            return kind, build.slash(serving.employee(n % teams), text)
                        if kind == "approve":
                            if bare_only:  # the bare app decides nothing: any card will do
                                request_id, _, approver, channel, ts = seeded.pending[0]
                            else:
                                request_id, _, approver, channel, ts = next(pending)
                            return kind, build.approve(approver, request_id, channel, ts)
                        if kind == "reveal":
                            holder, assignment = seeded.reveals[n % len(seeded.reveals)]
                            return kind, build.reveal(holder, assignment)
                        return kind, build.home(serving.manager(n % teams))

                    return make

                for r in range(ctx.repeat):
                    events = bare.url + "/slack/events"
                    results = serving.open_loop(
                        events, mix(serving.tool(0), bare_only=True), rate=LOW, count=low_count
                    )
                    bare_p99.append(1000 * serving.percentile([x.latency for x in results], 99))

                    results = serving.open_loop(
                        bot.url + "/slack/events",
                        mix(serving.tool(2 * r)),
                        rate=LOW,
                        count=low_count,
                    )
                    bot_p99.append(1000 * serving.percentile([x.latency for x in results], 99))
                    low_errors += sum(not x.ok for x in results)
                    serving.wait_for_outbox(rt)

                    before = _decisions(rt)
                    results = serving.open_loop(
                        bot.url + "/slack/events",
                        mix(serving.tool(2 * r + 1)),
                        rate=HIGH,
                        count=high_count,
                    )
                    approves = sum(x.kind == "approve" for x in results)
                    undecided = max(0, approves - (_decisions(rt) - before))
                    high_max.append(max(x.latency for x in results))
                    high_errors.append(sum(not x.ok for x in results) + undecided)
                    _describe(results, r)
                    serving.wait_for_outbox(rt)
        finally:
            sim.stop()
            rt.db.dispose()
    note = f"{low_count} requests at 100/s, {high_count} at 300/s per repetition"
    if low_errors:
        note += f"; {low_errors} errors at 100/s"
    return [
        Figure(
            "ack p99 at 100 req/s (mix)",
            Sample(tuple(bot_p99)),
            Sample(tuple(bare_p99)),
            "ms",
            at_most=3,
            note=note,
        ),
        # Absolute limits: the ceiling column is the limit itself (Slack's 3 s deadline).
        Figure(
            "ack slowest at 300 req/s",
            Sample(tuple(high_max)),
            Sample((3.0,)),
            "s",
            at_most=1,
            limit=True,
        ),
        # No errors allowed: the ratio is the count itself (a divisor of 1), target 0.
        Figure(
            "ack errors at 300 req/s",
            Sample(tuple(high_errors)),
            Sample((1.0,)),
            "errors (limit 0)",
            at_most=0,
            limit=True,
        ),
    ]


def _describe(results: list[serving.Result], r: int) -> None:
    """Per-kind p50/p99 of the 300/s run on stderr: where the time goes."""
    parts = []
    for kind, group in itertools.groupby(sorted(results, key=lambda x: x.kind), lambda x: x.kind):
        lat = [x.latency * 1000 for x in group]
        p50, p99 = serving.percentile(lat, 50), serving.percentile(lat, 99)
        parts.append(f"{kind} p50 {p50:.1f} p99 {p99:.1f} ms")
    print(f"  ack 300/s repetition {r + 1}: " + "; ".join(parts), file=sys.stderr)

"""End to end: an Approve click until Slack has the requester's DM and the approver's card.

Open-loop Approve clicks at 50 per second, each on a different team's pending request, so no
two messages go to one channel within a second (bot/pacing.py would hold the second one: the
figure would measure the pace, not the bot). The local Slack records when each call arrived;
a click's end-to-end time runs from its due time to the later of the ``chat.postMessage`` to
the requester and the ``chat.update`` of the approver's card.

Targets are absolute: p50 ≤ 50 ms and p99 ≤ 250 ms.
"""

from __future__ import annotations

import time

from bench import serving
from bench.context import Context
from bench.report import Figure, Sample
from bot.slacksim.server import SlackSim

RATE = 50.0
WAIT = 30.0  # seconds to wait for the last deliveries


def run(ctx: Context) -> list[Figure]:
    per_run = ctx.scale(500, 20)  # 10 s at 50/s
    teams = per_run * ctx.repeat
    p50s: list[float] = []
    p99s: list[float] = []
    missing = 0
    with ctx.database("endtoend") as url:
        env = serving.bench_settings(url)
        rt = serving.runtime(env)
        sim = serving.slack_sim(teams)
        try:
            serving.seed(rt, teams=teams, tools=0, holders=0)
            with serving.bot_process(
                env, sim, ctx.workdir / "endtoend-bot.log", deploy=ctx.deploy
            ) as bot:
                serving.wait_for_outbox(rt)
                seeded = serving.seeded(rt, teams)
                build = serving.Requests(sim)
                for r in range(ctx.repeat):
                    chunk = seeded.pending[r * per_run : (r + 1) * per_run]

                    def make(
                        k: int, chunk: list[tuple[int, str, str, str, str]] = chunk
                    ) -> tuple[str, serving.Body]:
                        request_id, _, approver, channel, ts = chunk[k]
                        return "approve", build.approve(approver, request_id, channel, ts)

                    # perf_counter (the load's clock) to wall time (the sim's clock).
                    offset = time.time() - time.perf_counter()
                    results = serving.open_loop(
                        bot.url + "/slack/events", make, rate=RATE, count=len(chunk), threads=16
                    )
                    due = {
                        chunk[i]: results_due
                        for i, results_due in enumerate(sorted(x.due + offset for x in results))
                    }
                    latencies, lost = _match(sim, chunk, due)
                    missing += lost
                    if latencies:
                        p50s.append(1000 * serving.percentile(latencies, 50))
                        p99s.append(1000 * serving.percentile(latencies, 99))
                    serving.wait_for_outbox(rt)
        finally:
            sim.stop()
            rt.db.dispose()
    note = f"{per_run} clicks at {RATE:g}/s per repetition"
    if missing:
        note += f"; {missing} clicks whose DM or card update never arrived (counted nowhere)"
    return [
        Figure(
            "click to DM + card update, p50",
            Sample(tuple(p50s) or (float("inf"),)),
            Sample((50.0,)),
            "ms",
            at_most=1,
            limit=True,
            note=note,
        ),
        Figure(
            "click to DM + card update, p99",
            Sample(tuple(p99s) or (float("inf"),)),
            Sample((250.0,)),
            "ms",
            at_most=1,
            limit=True,
        ),
    ]


def _match(
    sim: SlackSim,
    chunk: list[tuple[int, str, str, str, str]],
    due: dict[tuple[int, str, str, str, str], float],
) -> tuple[list[float], int]:
    """Per click, the later of the requester's DM and the card update, minus its due time."""
    by_requester = {item[1]: item for item in chunk}
    by_card = {(item[3], item[4]): item for item in chunk}
    arrived: dict[tuple[int, str, str, str, str], list[float]] = {item: [] for item in chunk}
    deadline = time.monotonic() + WAIT
    while True:
        dm: dict[tuple[int, str, str, str, str], float] = {}
        card: dict[tuple[int, str, str, str, str], float] = {}
        for call in sim.calls:
            channel = str(call.args.get("channel", ""))
            if call.method == "chat.postMessage" and call.ok:
                item = by_requester.get(channel.removeprefix("D"))
                if item is not None and item not in dm:
                    dm[item] = call.at
            elif call.method == "chat.update" and call.ok:
                item = by_card.get((channel, str(call.args.get("ts", ""))))
                if item is not None and item not in card:
                    card[item] = call.at
        if len(dm) == len(chunk) == len(card) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for item in chunk:
        if item in dm and item in card:
            arrived[item] = [dm[item], card[item]]
    latencies = [max(times) - due[item] for item, times in arrived.items() if times]
    return latencies, len(chunk) - len(latencies)

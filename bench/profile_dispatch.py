"""Per-notification cost of the outbox dispatcher, in-process, with cProfile on request.

``python -m bench.profile_dispatch [--teams N] [--db-url URL] [--profile] [--workers N]``

Seeds ``N`` teams (one pending "ide" request each, its approval card queued), then measures
the dispatcher delivering, against a :class:`SlackSim` in fast mode:

1. the N approval cards (``chat.postMessage`` + recording the card's ts);
2. after N Approve decisions, what they queued: each a ``step_closed`` (``chat.update`` of the
   card) and a ``request_approved`` DM: the end-to-end benchmark's notifications.

Prints milliseconds per notification and notifications per second for each phase; with
``--profile`` also the top functions by cumulative time (``Dispatcher.run_once`` and below).
Not a benchmark with a target (``python -m bench`` has those): a tool to see where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench import serving
from bot import approvals
from bot.app import assemble
from bot.dispatcher import WORKERS, Dispatcher
from bot.runtime import Runtime


def _drain(dispatcher: Dispatcher, profiler: cProfile.Profile | None) -> tuple[int, float]:
    """Deliver until nothing is due; (messages handled, seconds)."""
    handled = 0
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        while n := dispatcher.run_once():
            handled += n
    finally:
        if profiler is not None:
            profiler.disable()
    return handled, time.perf_counter() - start


def _phase(name: str, handled: int, seconds: float) -> None:
    per = 1000 * seconds / handled if handled else float("nan")
    rate = handled / seconds if seconds else float("nan")
    print(f"{name:<32} {handled:>6} notifications  {per:7.2f} ms each  {rate:8.1f} /s")


def _decide_all(rt: Runtime, teams: int) -> None:
    for request_id, _, approver, _, _ in serving.seeded(rt, teams).pending:
        approvals.decide(rt, request_id=request_id, step=0, actor=approver, approve=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_dispatch", description=__doc__)
    parser.add_argument("--teams", type=int, default=300)
    parser.add_argument("--db-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--workers", type=int, default=WORKERS, help="delivery threads")
    parser.add_argument("--profile", action="store_true", help="print the cProfile top 40")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="licensebot-profile-") as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'profile.db'}"
        env = serving.bench_settings(url)
        rt = serving.runtime(env)
        sim = serving.slack_sim(args.teams)
        profiler = cProfile.Profile() if args.profile else None
        try:
            serving.seed(rt, teams=args.teams, tools=0, holders=0)
            bot = assemble(
                rt,
                token=serving.TOKEN,
                signing_secret=serving.SECRET,
                api_url=sim.api_url,
                dispatch_workers=args.workers,
            )
            try:
                _phase("approval cards", *_drain(bot.dispatcher, profiler))
                _decide_all(rt, args.teams)
                _phase("step_closed + request_approved", *_drain(bot.dispatcher, profiler))
            finally:
                bot.dispatcher.stop()
                bot.close()
        finally:
            sim.stop()
            rt.db.dispose()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

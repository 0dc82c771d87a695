"""Where an ack-path request's CPU goes: ``python -m bench.profile_ack [--profile approve]``.

Not a benchmark (no figure, no target): a developer's tool. It seeds the company the HTTP
benchmarks use, assembles the bot exactly as ``licensebot serve`` does (without starting the
outbox dispatcher, so only the request's own work is measured) and calls its WSGI application
directly, without a socket, for each kind of the ack mix: slash ``request``, Approve clicks,
Reveal clicks, App Home opens; then the bare ack-only Bolt app (``bench/bareapp.py``) the same
way. It prints the mean and median wall milliseconds of one request per kind and the median
CPU milliseconds of the request's thread; with ``--profile KIND``, cProfile's top functions
(``--sort``, ``--top``, ``--callees NAME``) for that kind.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import bareapp, serving
from bot.app import assemble

WSGI = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
KINDS = ("slash", "approve", "reveal", "home")


def _environ(body: serving.Body) -> dict[str, Any]:
    raw, content_type = body
    timestamp = int(time.time())
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "3000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(timestamp),
        "HTTP_X_SLACK_SIGNATURE": serving.sign(raw, timestamp),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
    }


def _call(app: WSGI, body: serving.Body) -> str:
    status: list[str] = []

    def start_response(s: str, _headers: Any, _exc: Any = None) -> None:
        status.append(s)

    b"".join(app(_environ(body), start_response))
    return status[0]


def _time(
    app: WSGI,
    bodies: Sequence[Callable[[], serving.Body]],
    profile: cProfile.Profile | None,
    cpu_ms: list[float],
) -> list[float]:
    """Wall milliseconds of each request; this thread's CPU milliseconds go to ``cpu_ms``."""
    times = []
    for make in bodies:
        body = make()  # now: a trigger ID expires after 3 s
        if profile is not None:
            profile.enable()
        start, cpu = time.perf_counter(), time.thread_time()
        status = _call(app, body)
        times.append(1000 * (time.perf_counter() - start))
        cpu_ms.append(1000 * (time.thread_time() - cpu))
        if profile is not None:
            profile.disable()
        if not status.startswith("200"):
            raise RuntimeError(f"the app answered {status} to {body[0][:300]!r}")
    return times


def _print_statements(
    engine: sa.Engine, app: WSGI, bodies: dict[str, list[Callable[[], serving.Body]]]
) -> None:
    """The statements one request of each kind sends: the first of its kind in this process,
    before the timed ones (a cache filled on first use would show here, not in the timings)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split())[:160])

    for kind in KINDS:
        make = bodies[kind].pop()
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            _call(app, make())
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        print(f"-- {kind}: {len(seen)} statements")
        for line in seen:
            print("   ", line)
        seen.clear()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_ack")
    parser.add_argument("--count", type=int, default=200, help="requests per kind")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--profile", choices=KINDS, help="cProfile this kind")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative", help="a pstats sort key, e.g. tottime")
    parser.add_argument("--callees", help="also print what this function calls")
    parser.add_argument(
        "--statements", action="store_true", help="print the SQL of one request of each kind"
    )
    args = parser.parse_args()
    count: int = args.count
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'profile.db'}"
        env = serving.bench_settings(url)
        rt = serving.runtime(env)
        teams = count + 10
        sim = serving.slack_sim(teams)
        try:
            serving.seed(rt, teams=teams, tools=1, holders=count, cards=False)
            bot = assemble(
                rt, token=serving.TOKEN, signing_secret=serving.SECRET, api_url=sim.api_url
            )
            seeded = serving.seeded(rt, teams)
            build = serving.Requests(sim)
            bodies: dict[str, list[Callable[[], serving.Body]]] = {
                "slash": [
                    partial(build.slash, serving.employee(n), f"request {serving.tool(0)} x")
                    for n in range(count)
                ],
                "approve": [
                    partial(build.approve, approver, request_id, channel, ts)
                    for request_id, _, approver, channel, ts in seeded.pending[:count]
                ],
                "reveal": [partial(build.reveal, h, a) for h, a in seeded.reveals[:count]],
                "home": [partial(build.home, serving.manager(n)) for n in range(count)],
            }
            os.environ.setdefault("SLACK_SIGNING_SECRET", serving.SECRET)
            bare = bareapp.build()
            rows = []
            if args.statements:
                _print_statements(rt.db.engine, bot.wsgi, bodies)
            for kind in KINDS:
                profile = cProfile.Profile() if args.profile == kind else None
                cpu: list[float] = []
                times = _time(bot.wsgi, bodies[kind], profile, cpu)
                bare_times = _time(bare, bodies[kind], None, [])
                rows.append((kind, times, cpu, bare_times))
                if profile is not None:
                    out = io.StringIO()
                    stats = pstats.Stats(profile, stream=out).sort_stats(args.sort)
                    stats.print_stats(args.top)
                    if args.callees:
                        stats.print_callees(args.callees)
                    print(out.getvalue())
            print(
                f"{'kind':8} {'mean ms':>8} {'median':>8} {'cpu ms':>8}"
                f"   bare: {'mean':>6} {'median':>7}"
            )
            for kind, times, cpu, bare_times in rows:
                print(
                    f"{kind:8} {statistics.fmean(times):8.2f} {statistics.median(times):8.2f}"
                    f" {statistics.median(cpu):8.2f}"
                    f"         {statistics.fmean(bare_times):6.2f} "
                    f"{statistics.median(bare_times):7.2f}"
                )
            with rt.db.engine.connect() as conn:
                pending = conn.execute(
                    sa.text("SELECT count(*) FROM outbox_message WHERE status = 'pending'")
                ).scalar_one()
            print(f"({count} requests per kind; {pending} notifications left queued)")
        finally:
            sim.stop()
            rt.db.dispose()


if __name__ == "__main__":
    main()

"""``python -m bench``: run the benchmarks and print one table of ratios against ceilings."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from bench.context import DEPLOYS, SIZES, Context
from bench.report import Figure, table

# Each module has ``run(ctx) -> list[Figure]``.
BENCHMARKS = ("ack", "decisions", "endtoend", "digest", "keys", "reclaim")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="an existing PostgreSQL database")
    parser.add_argument("--size", choices=SIZES, default="full")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument(
        "--deploy",
        choices=DEPLOYS,
        default="single",
        help="single: one serve process; split: requests to a --role web process, delivery and "
        "jobs in a second (--role all)",
    )
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="licensebot-bench-") as tmp:
        ctx = Context(args.db, args.pg_url, args.size, max(args.repeat, 1), Path(tmp), args.deploy)
        for name in args.only or BENCHMARKS:
            module = importlib.import_module(f"bench.{name}")
            print(f"running {name} ({args.db}, {args.size}) ...", file=sys.stderr, flush=True)
            figures.extend(module.run(ctx))
    print(
        table(
            figures,
            title=f"licensebot benchmarks: {args.db}, size {args.size}, deploy {args.deploy}",
        )
    )
    # A tiny run only proves the benchmarks work; its figures say nothing about the targets.
    return 0 if args.size == "tiny" or all(f.met for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())

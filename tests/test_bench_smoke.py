"""Every benchmark still runs: ``python -m bench --size tiny --repeat 1 --only NAME``.

No timing is asserted (tiny figures mean nothing); the table must have each figure's row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]
# The rows each module must print (its figures' names, as far as this test knows them).
ROWS = {
    "ack": ("ack p99 at 100 req/s (mix)", "ack slowest at 300 req/s", "ack errors at 300 req/s"),
    "decisions": ("decisions per second (Approve clicks)",),
    "endtoend": ("click to DM + card update, p50", "click to DM + card update, p99"),
}


# Each benchmark in the default layout; end to end also split (README's split tables: a web
# process answers, another delivers, so a click reaches Slack only if both do their part).
CASES = [(name, "single") for name in BENCHMARKS] + [("endtoend", "split")]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("name", "deploy"), CASES)
def test_benchmark_runs_at_tiny_size(name: str, deploy: str) -> None:
    if not (ROOT / "bench" / f"{name}.py").exists():
        pytest.skip(f"bench/{name}.py is not written yet")
    argv = [sys.executable, "-m", "bench", "--size", "tiny", "--repeat", "1", "--only", name]
    argv += ["--deploy", deploy]
    pg_url = os.environ.get("TEST_DATABASE_URL")
    if pg_url:
        argv += ["--db", "postgres", "--pg-url", pg_url]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("figure") for line in lines), done.stdout
    assert f"deploy {deploy}" in done.stdout
    for row in ROWS.get(name, ()):
        assert any(line.startswith(row) for line in lines), f"no row {row!r} in:\n{done.stdout}"

"""``licensebot demo`` as a real child process: printed URL, clean stop, kept data, busy port."""

from __future__ import annotations

import os
import queue
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx

from tests.e2e.processes import LICENSEBOT

SEED_COUNTS = {
    "product": 5,
    "person": 9,
    "assignment": 12,
    "license_key": 9,
    "rolegrant": 3,
    "usage_signal": 12,
    "audit_entry": 9,
}


def clean_env() -> dict[str, str]:
    """No Slack or licensebot setting at all: the demo must need none."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "LICENSEBOT_", "DATABASE_URL"))
    }


class DemoProcess:
    def __init__(self, data_dir: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [LICENSEBOT, "demo", "--port", "0", "--data", str(data_dir)],
            env=env or clean_env(),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.line(timeout=20)
        prefix = "licensebot demo: open "
        assert first.startswith(prefix) and first.endswith("/demo"), first
        self.page = first.removeprefix(prefix)
        self.url = self.page.removesuffix("/demo")
        self.notice = self.line(timeout=5)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"no output; stderr: {err}") from None

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        self._reader.join(timeout=10)  # it ends at the end of stdout
        self.proc.stdout.close()
        return code, err


def counts(data_dir: Path) -> dict[str, int]:
    with closing(sqlite3.connect(data_dir / "licensebot.db")) as db:
        return {
            table: db.execute(f"select count(*) from {table}").fetchone()[0]  # fixed table names
            for table in SEED_COUNTS
        }


def test_demo_starts_serves_stops_cleanly_and_keeps_its_data(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    started = time.monotonic()
    demo = DemoProcess(data, cwd=tmp_path)
    try:
        assert demo.url.startswith("http://127.0.0.1:") and not demo.url.endswith(":0")
        assert "local simulation of Slack" in demo.notice and str(data) in demo.notice
        page = httpx.get(demo.page)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert httpx.get(demo.url + "/healthz").json() == {"ok": True}
        assert time.monotonic() - started < 15
        personas = httpx.get(demo.url + "/demo/api/personas").json()
        assert len(personas["personas"]) == 4
    finally:
        code, err = demo.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert demo.line(timeout=5) == "licensebot demo: stopped."
    assert counts(data) == SEED_COUNTS
    assert {"licensebot.db", "licensebot.key", "licensebot-audit.key"} <= {
        p.name for p in data.iterdir()
    }

    again = DemoProcess(data, cwd=tmp_path)
    try:
        assert "kept" in again.notice
        assert httpx.get(again.url + "/healthz").json() == {"ok": True}
    finally:
        code, err = again.stop()
    assert code == 0, err
    assert counts(data) == SEED_COUNTS  # not seeded twice


def test_a_real_deployments_settings_never_reach_the_demo(tmp_path: Path) -> None:
    elsewhere = tmp_path / "production.db"
    dotenv_db = tmp_path / "dotenv.db"
    (tmp_path / ".env").write_text(
        f"DATABASE_URL=sqlite:///{dotenv_db}\nLICENSEBOT_IT_CHANNEL=not-a-channel\n"
    )
    env = {
        **clean_env(),
        "DATABASE_URL": f"sqlite:///{elsewhere}",
        "LICENSEBOT_ENCRYPTION_KEYS": "not-a-fernet-key",  # serve would refuse to start
        "SLACK_BOT_TOKEN": "xoxb-a-real-workspace",
    }
    data = tmp_path / "demo-data"
    demo = DemoProcess(data, cwd=tmp_path, env=env)
    try:
        assert httpx.get(demo.url + "/healthz").json() == {"ok": True}
    finally:
        code, err = demo.stop()
    assert code == 0, err
    assert counts(data) == SEED_COUNTS  # the demo's own database, in its own folder
    assert not elsewhere.exists() and not dotenv_db.exists()


def test_a_first_start_killed_while_seeding_leaves_no_half_company(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    first = subprocess.Popen(
        [LICENSEBOT, "demo", "--port", "0", "--data", str(data)],
        env=clean_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (data / "licensebot.db.seeding").exists():
            assert first.poll() is None and time.monotonic() < deadline, "seeding never began"
            time.sleep(0.002)
    finally:
        first.kill()  # as a crash or a pulled plug would: no clean-up runs
        first.wait(timeout=10)
    # Cut off while seeding: no database a later start would take as the company.
    assert not (data / "licensebot.db").exists()

    again = DemoProcess(data, cwd=tmp_path)
    try:
        assert "new sample company" in again.notice
    finally:
        code, err = again.stop()
    assert code == 0, err
    assert counts(data) == SEED_COUNTS
    assert not list(data.glob("*.seeding*"))


def test_a_busy_port_is_one_line_and_a_failure_exit(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [LICENSEBOT, "demo", "--port", str(port), "--data", str(tmp_path / "d")],
            env=clean_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"licensebot: Port {port} on 127.0.0.1 is already in use")
    assert "--port" in lines[0]
    assert not (tmp_path / "d").exists()  # refused before making anything

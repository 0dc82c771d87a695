"""`licensebot` as real child processes, for tests that start, stop and kill the bot."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

LICENSEBOT = str(Path(sys.executable).with_name("licensebot"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    """This environment without any licensebot or Slack setting, plus the ones given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "LICENSEBOT_", "DATABASE_URL"))
    }
    env.update(DATABASE_URL=database_url, **extra)
    return env


def serve_env(database_url: str, api_url: str, encryption_key: str, **extra: str) -> dict[str, str]:
    """What `licensebot serve` needs to start against the local Slack at ``api_url``."""
    # Imported here: the e2e conftest imports the bot, which these helpers do not need.
    from tests.e2e.conftest import SECRET, TOKEN

    return base_env(
        database_url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=api_url,
        LICENSEBOT_ENCRYPTION_KEYS=encryption_key,
        **extra,
    )


class ServeProcess:
    """``licensebot serve`` in a child process, started and answering /healthz."""

    def __init__(self, env: dict[str, str], cwd: Path, *, role: str | None = None) -> None:
        """``role``: ``serve --role``; None leaves it to LICENSEBOT_ROLE in ``env``."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [LICENSEBOT, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            + (["--role", role] if role else []),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.proc.communicate()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("serve did not answer /healthz within 30 s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=30)

    def stop(self) -> str:
        """SIGTERM and wait; returns what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return err

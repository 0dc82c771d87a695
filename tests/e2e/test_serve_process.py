"""`licensebot serve` as a real process: start-up checks, /healthz, a signed command, shutdown."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from tests.e2e.conftest import SECRET, TOKEN
from tests.e2e.processes import LICENSEBOT, ServeProcess, base_env, free_port, serve_env


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim(bot_token=TOKEN) as s:
        yield s


def test_missing_slack_settings_is_one_clear_line(database_url: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [LICENSEBOT, "serve"],
        env=base_env(database_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SLACK_BOT_TOKEN" in done.stderr and "SLACK_SIGNING_SECRET" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_malformed_encryption_key_is_refused(
    database_url: str, tmp_path: Path, sim: SlackSim
) -> None:
    env = base_env(
        database_url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=sim.api_url,
        LICENSEBOT_ENCRYPTION_KEYS="not-a-key",
    )
    done = subprocess.run(
        [LICENSEBOT, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "LICENSEBOT_ENCRYPTION_KEYS" in done.stderr and "Traceback" not in done.stderr
    assert "not-a-key" not in done.stderr


def test_a_token_slack_refuses_is_reported_at_start(
    database_url: str, tmp_path: Path, sim: SlackSim, encryption_key: str
) -> None:
    env = base_env(
        database_url,
        SLACK_BOT_TOKEN="xoxb-wrong",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=sim.api_url,
        LICENSEBOT_ENCRYPTION_KEYS=encryption_key,
    )
    done = subprocess.run(
        [LICENSEBOT, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "SLACK_BOT_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert [c.method for c in sim.calls] == ["auth.test"]  # it asked the configured API


def test_serve_answers_healthz_and_signed_commands(
    database_url: str, tmp_path: Path, sim: SlackSim, encryption_key: str
) -> None:
    env = serve_env(
        database_url,
        sim.api_url,
        encryption_key,
    )
    bot = ServeProcess(env, tmp_path)
    try:
        assert sim.calls_to("auth.test"), "the start-up check must use SLACK_API_URL"
        with SlackSender(sim, bot.url + "/slack/events", SECRET) as sender:
            answer = sender.slash("UEMP00001", "help")
        assert answer.status_code == 200 and "/license request" in answer.text
    finally:
        err = bot.stop()
    assert bot.proc.returncode == 0, err
    assert "Traceback" not in err


def test_unreachable_slack_api_is_one_clear_line(
    database_url: str, tmp_path: Path, encryption_key: str
) -> None:
    env = base_env(
        database_url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/",
        LICENSEBOT_ENCRYPTION_KEYS=encryption_key,
    )
    done = subprocess.run(
        [LICENSEBOT, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "SLACK_API_URL" in done.stderr and "Traceback" not in done.stderr


def test_settings_come_from_a_dotenv_file_too(
    database_url: str, tmp_path: Path, sim: SlackSim, encryption_key: str
) -> None:
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN=xoxb-from-dotenv\nSLACK_SIGNING_SECRET={SECRET}\n"
        f"SLACK_API_URL={sim.api_url}\nLICENSEBOT_ENCRYPTION_KEYS={encryption_key}\n"
    )
    done = subprocess.run(
        [LICENSEBOT, "serve"],
        env=base_env(database_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The sim refuses this token: proof that .env's token and API URL were the ones used.
    assert done.returncode != 0 and "SLACK_BOT_TOKEN" in done.stderr
    assert [c.method for c in sim.calls] == ["auth.test"]
    assert sim.calls[0].error == "invalid_auth"

"""The Dockerfile, compose.yaml and .env.example agree with the code they deploy.

Docker is not run here (no daemon, no images in the test environment); these checks keep the
files from drifting away from `licensebot serve`'s options, the settings and /healthz.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import assemble
from bot.cli import serve
from bot.runtime import Runtime
from bot.server import BotServer
from bot.settings import ROLES, Settings
from bot.slacksim.server import SlackSim
from tests.e2e.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {name.upper() for name in Settings.model_fields}


def instructions() -> dict[str, list[str]]:
    """The Dockerfile's instructions by keyword, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.setdefault(keyword.upper(), []).append(rest.strip())
    return found


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value for name, value in pairs}


def test_the_image_runs_serve_as_a_non_root_user_on_the_exposed_port() -> None:
    found = instructions()
    assert found["FROM"] == ["python:3.11-slim"]
    (cmd,) = found["CMD"]
    args = json.loads(cmd)  # exec form: the process gets SIGTERM itself, no shell between
    assert args[:2] == ["licensebot", "serve"]
    options = dict(zip(args[2::2], args[3::2], strict=True))
    assert set(options) <= {opt for p in serve.params for opt in p.opts}
    assert options["--host"] == "0.0.0.0"
    assert found["EXPOSE"] == [options["--port"]]
    (user,) = found["USER"]
    assert user not in ("root", "0")
    (healthcheck,) = found["HEALTHCHECK"]
    assert f"127.0.0.1:{options['--port']}/healthz" in healthcheck


def test_the_image_copies_every_package_the_project_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {part for line in instructions()["COPY"] for part in line.split()[:-1]}
    assert packages <= copied
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert not packages & set(ignored)


@pytest.fixture
def healthz_port(runtime: Runtime) -> Iterator[int]:
    with SlackSim(bot_token="xoxb-deploy") as sim:
        bot = assemble(runtime, token="xoxb-deploy", signing_secret="s" * 32, api_url=sim.api_url)
        server = BotServer(bot, host="127.0.0.1", port=0)
        server.start()
        try:
            yield int(server.url.rsplit(":", 1)[1])
        finally:
            server.stop()


def test_the_image_healthcheck_passes_on_a_healthy_bot_and_fails_without_one(
    healthz_port: int,
) -> None:
    (healthcheck,) = instructions()["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]  # the slim image has no curl

    def check(port: int) -> int:
        code = command[2].replace("127.0.0.1:3000", f"127.0.0.1:{port}")
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30
        ).returncode

    assert check(healthz_port) == 0
    assert check(free_port()) != 0


def test_compose_runs_replicas_of_the_image_on_postgresql() -> None:
    services = compose()["services"]
    db, bot = services["db"], services["bot"]
    assert db["image"].startswith("postgres:")
    assert db["healthcheck"]["test"] and db["volumes"]
    assert bot["build"] == "."
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert bot["deploy"]["replicas"] >= 2
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    (ports,) = bot["ports"]
    first, last = ports.rsplit(":", 1)[0].split("-")
    assert int(last) - int(first) + 1 == bot["deploy"]["replicas"]  # one host port each
    (expose,) = instructions()["EXPOSE"]
    assert ports.rsplit(":", 1)[1] == expose


def test_compose_and_env_example_name_only_real_settings() -> None:
    bot = compose()["services"]["bot"]
    assert bot["env_file"] == ".env"
    assert set(bot["environment"]) <= SETTINGS
    # Replicas must share the keys: compose refuses to start without them.
    for name in ("LICENSEBOT_ENCRYPTION_KEYS", "LICENSEBOT_AUDIT_KEYS"):
        assert bot["environment"][name].startswith(f"${{{name}:?")
    example = env_example()
    assert set(example) - {"POSTGRES_PASSWORD"} <= SETTINGS
    referenced = set(re.findall(r"\$\{(\w+)", (ROOT / "compose.yaml").read_text()))
    assert referenced <= set(example)


def test_the_readme_shows_the_commands_of_the_deploy_files() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploying to production") :]
    section = section[: section.index("\n## ", 3)]
    for needed in ("docker compose up", "compose.yaml", "Dockerfile", ".env.example", "/healthz"):
        assert needed in section, needed
    cmd = json.loads(instructions()["CMD"][0])
    assert shlex.join(cmd) in section


def test_compose_answers_slack_on_web_replicas_and_delivers_from_one_worker() -> None:
    services = compose()["services"]
    bot, worker = services["bot"], services["worker"]
    assert bot["environment"]["LICENSEBOT_ROLE"] == "web"
    assert worker["environment"]["LICENSEBOT_ROLE"] == "all"
    assert worker["build"] == bot["build"] and "ports" not in worker
    shared = {k: v for k, v in worker["environment"].items() if k != "LICENSEBOT_ROLE"}
    assert shared == {k: v for k, v in bot["environment"].items() if k != "LICENSEBOT_ROLE"}
    assert {"web", "all"} <= set(ROLES)

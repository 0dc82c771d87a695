"""`licensebot serve --role web`: answers Slack, and leaves delivery and the scheduled jobs to
the `--role all` processes (README: "Deploying to production")."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot import notifications
from bot.runtime import Runtime
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from storage.models import OutboxMessage
from tests import company
from tests.e2e.conftest import SECRET, dm_with
from tests.e2e.processes import ServeProcess, serve_env


def _pending(rt: Runtime) -> list[str]:
    with rt.db.read() as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.status == "pending"))
        return [row.kind for row in rows]


def _scheduled_jobs(rt: Runtime) -> int:
    with rt.db.engine.connect() as conn:
        if not sa.inspect(conn).has_table("apscheduler_jobs"):
            return 0
        return int(conn.execute(sa.text("SELECT count(*) FROM apscheduler_jobs")).scalar_one())


@pytest.mark.parametrize("chosen_by", ["flag", "environment"])
def test_a_web_process_queues_and_an_all_process_delivers(
    chosen_by: str,
    runtime: Runtime,
    database_url: str,
    tmp_path: Path,
    slack: SlackSim,
    encryption_key: str,
    audit_key: str,
) -> None:
    company.seed(runtime)
    env = serve_env(
        database_url,
        slack.api_url,
        encryption_key,
        LICENSEBOT_AUDIT_KEYS=audit_key,
    )
    # `serve --role web`, or LICENSEBOT_ROLE=web (compose.yaml's way); the worker is then
    # `--role all`, or `serve` with neither (the default role).
    by_flag = chosen_by == "flag"
    web_env = env if by_flag else {**env, "LICENSEBOT_ROLE": "web"}
    web = ServeProcess(web_env, tmp_path, role="web" if by_flag else None)
    try:
        with SlackSender(slack, web.url + "/slack/events", SECRET) as sender:
            answer = sender.slash(company.EMPLOYEE, "request intellij need it")
        assert answer.status_code == 200
    finally:
        err = web.stop()
    assert web.proc.returncode == 0 and "Traceback" not in err
    # An `all` process drains its outbox before it exits; a web one left the card queued and
    # scheduled nothing.
    assert notifications.APPROVAL_CARD in _pending(runtime)
    assert not slack.calls_to("chat.postMessage")
    assert _scheduled_jobs(runtime) == 0

    worker = ServeProcess(env, tmp_path, role="all" if by_flag else None)
    try:
        card = slack.wait_for(dm_with(slack, company.MANAGER, "IntelliJ"), timeout=15)
        assert card is not None
        assert _scheduled_jobs(runtime) > 0
    finally:
        worker.stop()
    assert _pending(runtime) == []

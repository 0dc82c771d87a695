"""``POST /api/usage`` over real HTTP, and key reveals recorded as use, through Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import SQLModel, select

from bot.app import assemble
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import SlackSim
from bot.usage_api import MAX_BODY
from storage.models import UsageSignal
from tests import company
from tests.company import ADMIN, EMPLOYEE, MANAGER
from tests.e2e.conftest import SECRET, TOKEN, dm_with

API_TOKEN = "usage-api-token-0123456789abcdef"


@pytest.fixture
def api(runtime: Runtime, slack: SlackSim) -> Iterator[str]:
    """The bot with the usage API enabled; yields the URL of /api/usage."""
    company.seed(runtime)
    assembled = assemble(
        runtime,
        token=TOKEN,
        signing_secret=SECRET,
        api_url=slack.api_url,
        poll_seconds=0.05,
        api_token=API_TOKEN,
    )
    server = BotServer(assembled, host="127.0.0.1", port=0)
    server.start()
    yield server.url + "/api/usage"
    server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def post(client: httpx.Client, url: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(url, content=content, headers={**AUTH, **headers})


def signals(rt: Runtime) -> dict[tuple[str, str], tuple[datetime, str]]:
    with rt.db.read() as session:
        return {
            (s.product_id, s.user_id): (
                s.last_used_at.replace(tzinfo=UTC)
                if s.last_used_at.tzinfo is None
                else s.last_used_at.astimezone(UTC),
                s.source,
            )
            for s in session.exec(select(UsageSignal))
        }


def row_counts(rt: Runtime) -> dict[str, int]:
    with rt.db.read() as session:
        return {
            t.name: len(session.connection().execute(t.select()).all())
            for t in SQLModel.metadata.sorted_tables
        }


def test_signals_are_recorded_and_never_move_back(
    api: str, client: httpx.Client, runtime: Runtime, clock: ManualClock
) -> None:
    now = clock.now()
    body = [
        {"product_id": "intellij", "user": EMPLOYEE, "last_used_at": now.isoformat()},
        {"product_id": "figma", "user": "MGR@example.com", "last_used_at": "2026-10-01T12:00:00"},
    ]
    first = post(client, api, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"recorded": 2, "ignored_older": 0}
    older = [{"product_id": "intellij", "user": EMPLOYEE, "last_used_at": "2026-01-01"}]
    second = post(client, api, older)
    assert second.json() == {"recorded": 0, "ignored_older": 1}
    assert signals(runtime) == {
        ("intellij", EMPLOYEE): (now, "api"),
        ("figma", MANAGER): (datetime(2026, 10, 1, 12, 0, tzinfo=UTC), "api"),
    }


def test_not_enabled_without_a_token(bot: BotServer, client: httpx.Client) -> None:
    response = post(client, bot.url + "/api/usage", [])
    assert response.status_code == 404 and "not enabled" in response.json()["error"]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {API_TOKEN}", f"Bearer {API_TOKEN}x"],
)
def test_missing_or_wrong_token_is_401(
    api: str, client: httpx.Client, runtime: Runtime, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = [{"product_id": "figma", "user": EMPLOYEE, "last_used_at": "2026-10-01"}]
    response = client.post(api, content=json.dumps(body).encode(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert signals(runtime) == {}


def test_only_post(api: str, client: httpx.Client) -> None:
    response = client.get(api, headers=AUTH)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_a_body_over_5_mb_is_413(api: str, client: httpx.Client, runtime: Runtime) -> None:
    response = post(client, api, b"[" + b" " * MAX_BODY + b"]")
    assert response.status_code == 413
    # Without a Content-Length (chunked), the limit holds too.
    chunks = iter([b"[", b" " * MAX_BODY, b"]"])
    chunked = client.post(api, content=chunks, headers=AUTH)
    assert chunked.status_code == 413
    assert signals(runtime) == {}


def test_invalid_items_are_400_with_every_problem_and_nothing_is_written(
    api: str, client: httpx.Client, runtime: Runtime, clock: ManualClock
) -> None:
    before = row_counts(runtime)
    future = (clock.now() + timedelta(days=3)).isoformat()
    body: list[Any] = [
        {"product_id": "figma", "user": EMPLOYEE, "last_used_at": "2026-10-01"},  # fine
        {"product_id": "nope", "user": EMPLOYEE, "last_used_at": "2026-10-01"},
        {"product_id": "figma", "user": "ghost@example.com", "last_used_at": "2026-10-01"},
        {"product_id": "figma", "user": EMPLOYEE, "last_used_at": "soon"},
        {"product_id": "figma", "user": EMPLOYEE, "last_used_at": future},
        {"product_id": "figma", "user": 7, "extra": True},
        "not an object",
    ]
    response = post(client, api, body)
    assert response.status_code == 400
    problems = response.json()["problems"]
    assert [p.split(":")[0] for p in problems] == [f"item {i}" for i in range(1, 7)]
    assert "no product 'nope'" in problems[0]
    assert "'ghost@example.com' is not in the directory" in problems[1]
    assert "'soon' is not an ISO 8601" in problems[2]
    assert "more than a day in the future" in problems[3]
    assert "last_used_at is missing" in problems[4] and "user must be a string" in problems[4]
    assert "unknown field(s) 'extra'" in problems[4]
    assert row_counts(runtime) == before


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"{}",
        b'{"product_id": "figma"}',
        b"null",
        b"[" * 100_000 + b"]" * 100_000,
        b'[{"product_id": "\\ud800", "user": "\\u0000", "last_used_at": "\\u0000"}]',
        b'[{"product_id": "figma", "user": "UEMP00001", "last_used_at": "9999-12-31T23:59:59"}]',
        b'[{"product_id": "figma", "user": "UEMP00001", "last_used_at": "0001-01-01T00:00:00+05"}]',
        b"[1e999999, NaN, -Infinity]",
        b"[" + b"9" * 5000 + b"]",
        b'[{"product_id": "' + b"x" * 100_000 + b'", "user": "a@b", "last_used_at": "x"}]',
    ],
)
def test_junk_bodies_are_400_never_500(
    api: str, client: httpx.Client, runtime: Runtime, junk: bytes
) -> None:
    response = post(client, api, junk)
    assert response.status_code == 400, response.text
    assert response.json()["problems"]
    assert len(response.text) < 20_000  # a huge value is quoted cut short
    assert signals(runtime) == {}


def test_revealing_a_key_over_slack_records_a_use(
    slack: SlackSim, sender: SlackSender, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    sender.slash(EMPLOYEE, "request sublime")
    sender.click(ADMIN, slack.wait_for(dm_with(slack, ADMIN, "Sublime")), label="Approve")
    told = slack.wait_for(dm_with(slack, EMPLOYEE, "Reveal key"))
    clock.advance(timedelta(hours=2))
    sender.click(EMPLOYEE, told, label="Reveal key")
    slack.wait_for(lambda: slack.open_modal(EMPLOYEE))
    assert signals(runtime) == {("sublime", EMPLOYEE): (clock.now(), "reveal")}

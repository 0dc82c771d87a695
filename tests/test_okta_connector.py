"""The Okta System Log connector against a local fake Okta (real HTTP), the job and the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlmodel import select

from bot import jobs, usage
from bot.cli import cli
from bot.clock import ManualClock
from bot.connectors import ConnectorConfig, Page, configured
from bot.connectors.okta import OktaConnector
from bot.connectors.pull import pull
from bot.errors import ConnectorError
from bot.runtime import Runtime
from bot.settings import Settings
from storage.models import AuditEntry, ConnectorState, JobRun, UsageSignal
from tests import company
from tests.company import EMPLOYEE, MANAGER, NEWHIRE
from tests.fakes.okta import FakeOkta, serve, sso_event

TOKEN = "00aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ab"
FIGMA_APP = "0oa1figma0000000000"
IJ_APP = "0oa1intellij000000"
OTHER_APP = "0oa1unclaimed00000"

CATALOG = company.CATALOG.replace(
    "    approval: [manager]\n",  # figma's last line
    f"    approval: [manager]\n    usage_source: okta:{FIGMA_APP}\n",
    1,
).replace(
    "    reclaim_after_days: 30\n",  # intellij's last line
    f"    reclaim_after_days: 30\n    usage_source: okta:{IJ_APP}\n",
    1,
)


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    company.seed(runtime, with_keys=False)
    from bot import catalog

    catalog.load_catalog(runtime, CATALOG, actor="test")
    return runtime


@pytest.fixture
def okta(clock: ManualClock) -> Iterator[FakeOkta]:
    with serve(TOKEN, clock.now) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, follow_redirects=False) as c:
        yield c


class Sleeper:
    """Waits by moving the test clock: nothing really sleeps."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


@pytest.fixture
def sleeper(clock: ManualClock) -> Sleeper:
    return Sleeper(clock)


def connector(
    okta: FakeOkta,
    client: httpx.Client,
    clock: ManualClock,
    sleeper: Sleeper,
    *,
    token: str = TOKEN,
    page_size: int = 3,
) -> OktaConnector:
    return OktaConnector(
        url=okta.url, token=token, client=client, clock=clock, sleep=sleeper, page_size=page_size
    )


def signals(rt: Runtime) -> dict[tuple[str, str], tuple[datetime, str]]:
    with rt.db.read() as session:
        return {
            (s.product_id, s.user_id): (_utc(s.last_used_at), s.source)
            for s in session.exec(select(UsageSignal))
        }


def cursor(rt: Runtime) -> str | None:
    with rt.db.read() as session:
        state = session.get(ConnectorState, "okta")
        return state.cursor if state is not None else None


def pulled_audit(rt: Runtime) -> list[str]:
    with rt.db.read() as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.action == "usage.pulled"))
        return [r.details for r in rows]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def ago(clock: ManualClock, **delta: float) -> datetime:
    return clock.now() - timedelta(**delta)


def seven_events(okta: FakeOkta, clock: ManualClock) -> None:
    okta.add(
        sso_event(email="emp@example.com", app_id=FIGMA_APP, at=ago(clock, days=10)),
        sso_event(email="mgr@example.com", app_id=IJ_APP, at=ago(clock, days=9)),
        sso_event(email="EMP@Example.com", app_id=FIGMA_APP, at=ago(clock, days=8)),  # newer
        sso_event(email="new@example.com", app_id=IJ_APP, at=ago(clock, days=7)),
        sso_event(email="new@example.com", app_id=FIGMA_APP, at=ago(clock, days=6)),
        sso_event(email="mgr@example.com", app_id=IJ_APP, at=ago(clock, days=5)),
        sso_event(email="emp@example.com", app_id=IJ_APP, at=ago(clock, days=4)),
    )


# --- pages, mapping, cursor ------------------------------------------------------------------


def test_pages_are_followed_and_signals_land(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (result.error, result.events, result.recorded, result.pages) == (None, 7, 6, 3)
    assert signals(rt) == {
        ("figma", EMPLOYEE): (ago(clock, days=8), "connector:okta"),
        ("intellij", MANAGER): (ago(clock, days=5), "connector:okta"),
        ("intellij", NEWHIRE): (ago(clock, days=7), "connector:okta"),
        ("figma", NEWHIRE): (ago(clock, days=6), "connector:okta"),
        ("intellij", EMPLOYEE): (ago(clock, days=4), "connector:okta"),
    }
    # 3 + 3 + 1 events, then an empty page: caught up.
    assert len(okta.requests) == 4
    first = okta.requests[0]
    assert first.headers["authorization"] == f"SSWS {TOKEN}"
    assert first.headers["accept"] == "application/json"
    assert first.query == {
        "since": "2026-10-03T09:00:00.000Z",  # 30 days before the clock's 2026-11-02T09:00Z
        "filter": 'eventType eq "user.authentication.sso"',
        "sortOrder": "ASCENDING",
        "limit": "3",
    }
    assert [r.query.get("after", "").split("_")[-1] for r in okta.requests] == ["", "3", "6", "7"]
    assert "after=" in (cursor(rt) or "")
    assert len(pulled_audit(rt)) == 3 and '"events":3' in pulled_audit(rt)[0]
    assert not sleeper.slept


def test_the_next_pull_resumes_after_the_cursor(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    pull(rt, connector(okta, client, clock, sleeper), actor="test")
    clock.advance(timedelta(hours=1))
    okta.add(sso_event(email="mgr@example.com", app_id=FIGMA_APP, at=ago(clock, minutes=30)))
    okta.requests.clear()

    again = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (again.error, again.events, again.recorded) == (None, 1, 1)
    assert okta.requests[0].query["after"].endswith("_7")
    assert signals(rt)[("figma", MANAGER)][0] == ago(clock, minutes=30)
    # Caught up: a third pull reads nothing and records nothing.
    third = pull(rt, connector(okta, client, clock, sleeper), actor="test")
    assert (third.events, third.recorded, len(pulled_audit(rt))) == (0, 0, 4)


def test_unknown_apps_and_people_and_failed_sign_ins_are_skipped_and_counted(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    okta.add(
        sso_event(email="emp@example.com", app_id=OTHER_APP, at=ago(clock, days=3)),
        sso_event(email="stranger@example.com", app_id=FIGMA_APP, at=ago(clock, days=3)),
        sso_event(
            email="emp@example.com", app_id=FIGMA_APP, at=ago(clock, days=2), result="FAILURE"
        ),
        sso_event(email="mgr@example.com", app_id=FIGMA_APP, at=ago(clock, days=1)),
        # Another event type does not reach us: the filter asks Okta for SSO sign-ins only.
        sso_event(
            email="emp@example.com",
            app_id=FIGMA_APP,
            at=ago(clock, days=1),
            event_type="user.session.start",
        ),
    )
    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (result.error, result.events, result.uses) == (None, 4, 3)
    assert (result.unknown_apps, result.unknown_users, result.recorded) == (1, 1, 1)
    assert set(signals(rt)) == {("figma", MANAGER)}
    assert '"unknown_apps":1' in pulled_audit(rt)[0]
    assert result.line() == (
        "okta: 4 events read, 1 signals recorded, 1 uses of apps no product claims, "
        "1 uses by people not in the directory"
    )


def test_last_use_never_moves_backwards(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    newer = ago(clock, hours=1)
    with rt.db.transaction() as session:
        usage.upsert_signals(session, {("figma", EMPLOYEE): newer}, source="csv", now=clock.now())
    okta.add(sso_event(email="emp@example.com", app_id=FIGMA_APP, at=ago(clock, days=3)))

    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (result.events, result.recorded) == (1, 0)
    assert signals(rt) == {("figma", EMPLOYEE): (newer, "csv")}


def test_a_pull_reads_at_most_max_pages_and_the_next_goes_on(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    conn = OktaConnector(
        url=okta.url,
        token=TOKEN,
        client=client,
        clock=clock,
        sleep=sleeper,
        page_size=3,
        max_pages=2,
    )
    first = pull(rt, conn, actor="test")
    assert (first.error, first.events, len(okta.requests)) == (None, 6, 2)
    second = pull(rt, conn, actor="test")
    assert (second.error, second.events) == (None, 1)


def test_without_a_next_link_the_next_pull_starts_at_the_newest_event_read(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    okta.next_links = False
    conn = connector(okta, client, clock, sleeper)

    first = pull(rt, conn, actor="test")
    assert (first.events, len(okta.requests)) == (3, 1)
    assert "since=2026-10-25T09%3A00%3A00.000Z" in (cursor(rt) or "")  # the 3rd event's time
    for _ in range(3):
        pull(rt, conn, actor="test")
    # Each pull re-reads the newest event of the one before; signals stay as they should be.
    assert len(signals(rt)) == 5
    assert signals(rt)[("intellij", EMPLOYEE)][0] == ago(clock, days=4)


def test_a_cursor_of_another_org_is_dropped_for_the_lookback(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    with rt.db.transaction() as session:
        session.add(
            ConnectorState(
                name="okta",
                cursor="https://old-org.okta.com/api/v1/logs?after=1_1",
                updated_at=clock.now(),
            )
        )
    seven_events(okta, clock)

    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (result.error, result.events) == (None, 7)
    assert okta.requests[0].query["since"] == "2026-10-03T09:00:00.000Z"
    assert (cursor(rt) or "").startswith(okta.url)


# --- rate limits and failures -----------------------------------------------------------------


def test_429_waits_until_the_reset_then_goes_on(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    okta.rate_limit_next(1, reset_in=20)

    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (result.error, result.events, result.recorded) == (None, 7, 6)
    assert sleeper.slept == [21.0]  # until the reset, plus a second for clock drift
    assert [r.query.get("after") for r in okta.requests[:2]] == [None, None]  # same page again


def test_a_far_reset_stops_the_pull_and_the_next_one_resumes(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    conn = connector(okta, client, clock, sleeper)
    okta.rate_limit_next(1, reset_in=3600, after=1)  # page two: limited for an hour

    stopped = pull(rt, conn, actor="test")
    assert stopped.error is not None and "resets at 2026-11-02T10:00:00+00:00" in stopped.error
    assert (stopped.events, stopped.pages) == (3, 1) and not sleeper.slept
    kept = cursor(rt)
    assert kept is not None and kept.endswith("_3")

    clock.advance(timedelta(hours=1))
    resumed = pull(rt, conn, actor="test")
    assert (resumed.error, resumed.events) == (None, 4)
    assert stopped.events + resumed.events == 7 and len(signals(rt)) == 5


def test_a_spent_window_waits_before_the_next_page(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    okta.remaining_zero_next(1)  # the first page uses the window's last request

    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (result.error, result.events) == (None, 7)
    assert sleeper.slept == [61.0] and len(okta.requests) == 4  # no 429 provoked


def test_a_passing_5xx_is_retried(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    okta.fail_next(2, status=503)

    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert (result.error, result.events) == (None, 7)
    assert sleeper.slept == [2.0, 4.0]


def test_5xx_after_retries_keeps_the_cursor_and_the_next_pull_resumes_without_double_counting(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    conn = connector(okta, client, clock, sleeper)
    okta.fail_next(3, status=500, after=1)  # Okta is down from the second page on

    failed = pull(rt, conn, actor="test")

    assert failed.error is not None and "500 (Internal Server Error) 3 times" in failed.error
    assert (failed.events, failed.pages) == (3, 1) and sleeper.slept == [2.0, 4.0]
    assert len(signals(rt)) == 2 and (cursor(rt) or "").endswith("_3")

    resumed = pull(rt, conn, actor="test")
    assert (resumed.error, resumed.events) == (None, 4)
    details = pulled_audit(rt)
    assert sum(int(d.split('"events":')[1].split(",")[0]) for d in details) == 7
    assert len(signals(rt)) == 5


def test_network_errors_are_retried_then_stop(
    rt: Runtime, clock: ManualClock, sleeper: Sleeper, client: httpx.Client
) -> None:
    conn = OktaConnector(
        url="http://127.0.0.1:9", token=TOKEN, client=client, clock=clock, sleep=sleeper
    )
    result = pull(rt, conn, actor="test")
    assert result.error is not None and "no answer (ConnectError) 3 times" in result.error
    assert cursor(rt) is None and sleeper.slept == [2.0, 4.0]


def test_a_bad_token_is_a_clear_error_and_nothing_is_written(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    wrong = "00wrongwrongwrongwrongwrongwrongwrong"
    result = pull(rt, connector(okta, client, clock, sleeper, token=wrong), actor="test")

    assert result.error == (
        "Okta refused LICENSEBOT_OKTA_TOKEN (401 Invalid token provided); create an API token "
        "in the Okta Admin Console (Security > API > Tokens) and set it."
    )
    assert wrong not in result.error and len(okta.requests) == 1
    assert (signals(rt), cursor(rt), pulled_audit(rt)) == ({}, None, [])


def test_a_next_link_to_another_host_is_not_followed(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    okta.link_host = "okta.attacker.example"

    result = pull(rt, connector(okta, client, clock, sleeper), actor="test")

    assert result.error is not None and "okta.attacker.example" in result.error
    assert len(okta.requests) == 1 and cursor(rt) is None


def test_a_pull_overtaken_by_another_stores_nothing_twice(
    rt: Runtime, okta: FakeOkta, client: httpx.Client, clock: ManualClock, sleeper: Sleeper
) -> None:
    seven_events(okta, clock)
    conn = connector(okta, client, clock, sleeper)

    class Racing:
        name = "okta"

        def pages(self, cur: str | None, *, now: datetime) -> Iterator[Page]:
            inner = conn.pages(cur, now=now)
            yield next(inner)
            # Another pull (the CLI while the job runs) stores the next page first.
            other = pull(rt, conn, actor="other")
            assert other.error is None
            yield from inner

    result = pull(rt, Racing(), actor="test")
    assert result.error is not None and "moved on at the same time" in result.error
    assert sum(int(d.split('"events":')[1].split(",")[0]) for d in pulled_audit(rt)) == 7


# --- settings, job, CLI -----------------------------------------------------------------------


def test_settings_turn_the_connector_on_only_with_url_and_token() -> None:
    assert configured(Settings(licensebot_okta_url="https://acme.okta.com")) == ()
    assert configured(Settings(licensebot_okta_token=TOKEN)) == ()
    on = configured(
        Settings(licensebot_okta_url="https://acme.okta.com/", licensebot_okta_token=TOKEN)
    )
    assert on == (ConnectorConfig("okta", "https://acme.okta.com", TOKEN, 30),)
    assert TOKEN not in repr(on) and TOKEN not in repr(Settings(licensebot_okta_token=TOKEN))
    for bad in ("http://acme.okta.com", "https://acme.okta.com/api/v1", "acme.okta.com"):
        with pytest.raises(ValidationError, match="Okta org URL"):
            Settings(licensebot_okta_url=bad)


def test_the_usage_pull_job_runs_the_connectors_once_an_hour(
    rt: Runtime, okta: FakeOkta, clock: ManualClock, sleeper: Sleeper
) -> None:
    rt.sleep = sleeper
    job = jobs.JOBS["usage-pull"]
    assert job.schedule(rt.policy) == "17 * * * *"
    assert job.run(rt, clock.now()) is False  # no connector configured
    rt.policy = dataclasses.replace(
        rt.policy, connectors=(ConnectorConfig("okta", okta.url, TOKEN),)
    )
    seven_events(okta, clock)

    assert job.run(rt, clock.now()) is True
    assert len(signals(rt)) == 5 and {s for _, s in signals(rt).values()} == {"connector:okta"}
    assert job.run(rt, clock.now()) is False  # this hour is done
    with rt.db.read() as session:
        assert session.get(JobRun, ("usage-pull", "2026-11-02T09")) is not None
    audit_actors = set()
    with rt.db.read() as session:
        for entry in session.exec(select(AuditEntry).where(AuditEntry.action == "usage.pulled")):
            audit_actors.add(entry.actor)
    assert audit_actors == {"licensebot"}

    clock.advance(timedelta(hours=1))
    okta.fail_next(3)
    with pytest.raises(ConnectorError, match="okta: Okta gave 500"):
        job.run(rt, clock.now())
    assert sleeper.slept == [2.0, 4.0]  # the backoff waited through rt.sleep


def run_cli(env: dict[str, str | None]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["usage", "pull"], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_pulls_now_and_prints_counts(
    rt: Runtime, database_url: str, encryption_key: str
) -> None:
    # The CLI's clock is the real one: the fake's events are recent in real time.
    now = datetime.now(UTC)
    with serve(TOKEN, lambda: datetime.now(UTC)) as fake:
        fake.add(
            sso_event(email="emp@example.com", app_id=FIGMA_APP, at=now - timedelta(days=2)),
            sso_event(email="ghost@example.com", app_id=FIGMA_APP, at=now - timedelta(days=1)),
            sso_event(email="emp@example.com", app_id=OTHER_APP, at=now - timedelta(days=1)),
        )
        env: dict[str, str | None] = {
            "DATABASE_URL": database_url,
            "LICENSEBOT_ENCRYPTION_KEYS": encryption_key,
            "LICENSEBOT_OKTA_URL": None,
            "LICENSEBOT_OKTA_TOKEN": None,
        }
        code, out, err = run_cli(env)
        assert (code, out) == (1, "")
        assert err == (
            "licensebot: No usage connector is configured; set LICENSEBOT_OKTA_URL and "
            "LICENSEBOT_OKTA_TOKEN.\n"
        )

        env |= {"LICENSEBOT_OKTA_URL": fake.url, "LICENSEBOT_OKTA_TOKEN": "wrong-token-value"}
        code, out, err = run_cli(env)
        assert code == 1 and "wrong-token-value" not in out + err
        assert out == (
            "okta: 0 events read, 0 signals recorded, 0 uses of apps no product claims, "
            "0 uses by people not in the directory\n"
        )
        assert err.startswith("licensebot: okta: Okta refused LICENSEBOT_OKTA_TOKEN (401")
        assert err.count("\n") == 1

        env["LICENSEBOT_OKTA_TOKEN"] = TOKEN
        code, out, err = run_cli(env)
        assert (code, err) == (0, "")
        assert out == (
            "okta: 3 events read, 1 signals recorded, 1 uses of apps no product claims, "
            "1 uses by people not in the directory\n"
        )
    assert set(signals(rt)) == {("figma", EMPLOYEE)}

"""Okta's System Log as a usage source: each successful SSO sign-in to an app is a use of it.

The API (https://developer.okta.com/docs/reference/api/system-log/):

    GET {org}/api/v1/logs?since=ISO&filter=eventType eq "user.authentication.sso"
        &sortOrder=ASCENDING&limit=N
    Authorization: SSWS {token}

answers a JSON array of LogEvents, oldest first. A query without ``until`` is a *polling* query:
Okta always answers a ``Link: <...&after=CURSOR>; rel="next"`` header, and an empty page means
we are caught up. That next link is exactly where the following pull must start, so it is our
cursor (Okta recommends storing it). Rate limits come as ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (epoch seconds); over the limit Okta
answers 429 until the reset.

What we do with trouble:
- 429, or a page leaving no requests for the next one: wait until the reset when that is
  close (``max_wait``), otherwise stop; the stored cursor lets the next pull resume.
- 5xx or no answer: a few attempts with a growing pause, then stop, keeping the cursor.
- 401/403: stop with a message naming LICENSEBOT_OKTA_TOKEN.
A next link on another host than the configured org is refused: following it would send the
token there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.clock import Clock
from bot.connectors import Activity, Page, Sleep
from bot.errors import ConnectorAuthError, ConnectorError

log = logging.getLogger("licensebot.connectors")

EVENT_TYPE = "user.authentication.sso"
LOGS_PATH = "/api/v1/logs"
PAGE_SIZE = 1000  # the largest page /api/v1/logs serves
MAX_WAIT = 60.0  # seconds we wait for a rate limit to reset before leaving it to the next pull
ATTEMPTS = 3  # tries of one request when Okta answers 5xx or not at all
BACKOFF = 2.0  # seconds before the second try, doubled for each next one
# A pull reads at most this many pages; the rest waits for the next pull (a guard against a
# next link that never ends, and a bound on one job's run time).
MAX_PAGES = 500
_DEFAULT_RESET_WAIT = 60.0  # Okta's limits are per minute: a 429 without a reset header
_RATE_LIMITED_TIMES = 5  # 429s in a row for one request before we give up on this pull
_SUMMARY_WIDTH = 200


class OktaConnector:
    name = "okta"

    def __init__(
        self,
        *,
        url: str,
        token: str,
        client: httpx.Client,
        clock: Clock,
        sleep: Sleep,
        lookback_days: int = 30,
        page_size: int = PAGE_SIZE,
        max_wait: float = MAX_WAIT,
        attempts: int = ATTEMPTS,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self._base = httpx.URL(url.rstrip("/"))
        self._token = token
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._lookback = timedelta(days=lookback_days)
        self._page_size = page_size
        self._max_wait = max_wait
        self._attempts = attempts
        self._max_pages = max_pages

    def __repr__(self) -> str:  # names the org, never the token
        return f"OktaConnector(url={str(self._base)!r})"

    def pages(self, cursor: str | None, *, now: datetime) -> Iterator[Page]:
        url = self._resume(cursor, now)
        for _ in range(self._max_pages):
            response = self._get(url)
            events = _events(response)
            following = self._next_link(response)
            resume = following
            if resume is None:
                # Okta always links onward from a polling query; without a link there is no
                # next page, and the next pull starts at the newest event seen (re-reading it
                # is harmless: signals only move forward, and an equal time records nothing).
                newest = _newest(events)
                resume = self._since_url(newest) if newest else url
            yield Page(
                tuple(a for e in events if (a := _activity(e)) is not None), len(events), resume
            )
            if following is None or not events or following == url:
                return  # caught up
            url = following
            self._respect_remaining(response)
        log.info("event=okta_pull_paused reason=max_pages pages=%d", self._max_pages)

    # --- requests ------------------------------------------------------------------------------

    def _resume(self, cursor: str | None, now: datetime) -> str:
        if cursor:
            if self._same_origin(httpx.URL(cursor)):
                return cursor
            # The org URL changed since the cursor was stored: read the new org from the start.
            log.warning("event=okta_cursor_dropped reason=other_org")
        return self._since_url(_okta_time(now - self._lookback))

    def _since_url(self, since: str) -> str:
        return str(
            self._base.join(LOGS_PATH).copy_merge_params(
                {
                    "since": since,
                    "filter": f'eventType eq "{EVENT_TYPE}"',
                    "sortOrder": "ASCENDING",
                    "limit": str(self._page_size),
                }
            )
        )

    def _get(self, url: str) -> httpx.Response:
        headers = {"Authorization": f"SSWS {self._token}", "Accept": "application/json"}
        failures = 0
        limited = 0
        while True:
            try:
                response = self._client.get(url, headers=headers)
            except httpx.TransportError as exc:
                failures += 1
                problem = f"no answer ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    return response
                if response.status_code == 429:
                    limited += 1
                    if limited > _RATE_LIMITED_TIMES:
                        raise ConnectorError(
                            f"Okta kept answering 429 (rate limited) after {limited - 1} waits; "
                            "what was read is stored and the next pull resumes there."
                        )
                    self._wait_for_reset(response, "answered 429 (rate limited)")
                    continue
                if response.status_code in (401, 403):
                    raise _refused(response)
                if response.status_code < 500:
                    raise ConnectorError(
                        f"Okta answered {response.status_code} ({_summary(response)}) to "
                        f"GET {LOGS_PATH}; check LICENSEBOT_OKTA_URL."
                    )
                failures += 1
                problem = f"{response.status_code} ({_summary(response)})"
            if failures >= self._attempts:
                raise ConnectorError(
                    f"Okta gave {problem} {failures} times in a row; what was read is stored "
                    "and the next pull resumes there."
                )
            pause = BACKOFF * 2 ** (failures - 1)
            log.info("event=okta_retry problem=%r pause=%.0fs", problem, pause)
            self._sleep(pause)

    def _wait_for_reset(self, response: httpx.Response, why: str) -> None:
        reset = _int_header(response, "X-Rate-Limit-Reset")
        now = self._clock.now().timestamp()
        wait = _DEFAULT_RESET_WAIT if reset is None else max(0.0, reset - now)
        if wait > self._max_wait:
            at = datetime.fromtimestamp(now + wait, UTC).isoformat(timespec="seconds")
            raise ConnectorError(
                f"Okta {why}; its limit resets at {at}, too far to wait for. What was read "
                "is stored and the next pull resumes there."
            )
        log.info("event=okta_rate_limited wait=%.0fs", wait)
        # A second past the reset: Okta's clock and ours may disagree by a little.
        self._sleep(wait + 1.0)

    def _respect_remaining(self, response: httpx.Response) -> None:
        """Wait for the reset before asking again when this answer used the last request."""
        if _int_header(response, "X-Rate-Limit-Remaining") == 0:
            self._wait_for_reset(response, "has no requests left in this rate-limit window")

    def _next_link(self, response: httpx.Response) -> str | None:
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        url = self._base.join(link)
        if not self._same_origin(url):
            raise ConnectorError(
                f"Okta's next link points to {url.host}, not to LICENSEBOT_OKTA_URL's host "
                f"{self._base.host}; not following it (it would carry the API token)."
            )
        return str(url)

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (
            self._base.scheme,
            self._base.host,
            self._base.port,
        )


# --- answers --------------------------------------------------------------------------------------


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, list):
        raise ConnectorError(
            f"Okta's answer to GET {LOGS_PATH} is not a JSON list of log events; "
            "check LICENSEBOT_OKTA_URL."
        )
    return [e for e in body if isinstance(e, dict)]


def _activity(event: dict[str, Any]) -> Activity | None:
    """The use an event reports: a successful SSO sign-in of a user to an app, else None."""
    outcome, actor, targets = event.get("outcome"), event.get("actor"), event.get("target")
    if (
        event.get("eventType") != EVENT_TYPE
        or not isinstance(outcome, dict)
        or outcome.get("result") != "SUCCESS"
        or not isinstance(actor, dict)
        or actor.get("type") != "User"
        or not isinstance(targets, list)
    ):
        return None
    login = actor.get("alternateId")
    apps = [t.get("id") for t in targets if isinstance(t, dict) and t.get("type") == "AppInstance"]
    at = _parse_time(event.get("published"))
    if not isinstance(login, str) or not login or at is None:
        return None
    if not apps or not isinstance(apps[0], str) or not apps[0]:
        return None
    return Activity(app_id=apps[0], login=login, at=at)


def _newest(events: list[dict[str, Any]]) -> str | None:
    times = [t for e in events if (t := _parse_time(e.get("published"))) is not None]
    return _okta_time(max(times)) if times else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)  # reads Okta's "2026-11-20T10:00:00.000Z"
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _okta_time(at: datetime) -> str:
    """ISO 8601 as Okta writes it: UTC, milliseconds, ``Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int_header(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def _summary(response: httpx.Response) -> str:
    """Okta's ``errorSummary``, or the reason phrase; cut short and on one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    summary = body.get("errorSummary") if isinstance(body, dict) else None
    text = summary if isinstance(summary, str) and summary else response.reason_phrase
    return " ".join(text.split())[:_SUMMARY_WIDTH]


def _refused(response: httpx.Response) -> ConnectorAuthError:
    if response.status_code == 401:
        return ConnectorAuthError(
            f"Okta refused LICENSEBOT_OKTA_TOKEN (401 {_summary(response)}); create an API "
            "token in the Okta Admin Console (Security > API > Tokens) and set it."
        )
    return ConnectorAuthError(
        f"LICENSEBOT_OKTA_TOKEN may not read Okta's System Log (403 {_summary(response)}); "
        "use a token of an admin with the Read-Only Administrator role."
    )

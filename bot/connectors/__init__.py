"""Pull connectors: usage read from a vendor's API on a schedule (the ``usage-pull`` job).

A connector knows one vendor's API and none of our tables. From a stored cursor it yields pages
of ``Activity`` (the vendor's id of an app, the person's login, when they used it), each page
with the cursor that resumes right after it. ``bot.connectors.pull`` maps activities to products
(a product claims an app with ``usage_source: "<connector>:<app id>"``) and to people (their
directory email), and stores each page's signals together with its cursor in one transaction:
a pull that stops half-way (a crash, a rate limit, an outage) loses nothing and repeats
nothing, because the next pull resumes after the last stored page.

Connectors raise ``bot.errors.ConnectorError`` when they stop early; the pages they yielded
before that stay stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for annotations: building a connector needs no settings at import
    import httpx

    from bot.clock import Clock
    from bot.settings import Settings

# Waits between attempts: time.sleep in production, a function moving a ManualClock in tests.
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Activity:
    """One use of an app, as the vendor reports it."""

    app_id: str  # the vendor's id of the app; a product claims it by usage_source
    login: str  # the person's login at the vendor: an email address, matched to the directory
    at: datetime  # UTC


@dataclass(frozen=True)
class Page:
    activities: tuple[Activity, ...]
    events: int  # events read, including those that are not a use (failed sign-ins, ...)
    cursor: str  # where the next pull starts once this page is stored


class UsageConnector(Protocol):
    @property
    def name(self) -> str:
        """The connector's name: the prefix of ``usage_source`` and of its stored cursor."""
        ...

    def pages(self, cursor: str | None, *, now: datetime) -> Iterator[Page]:
        """The pages after ``cursor`` (None: a first pull, reading the last lookback days)."""
        ...


@dataclass(frozen=True)
class ConnectorConfig:
    """One configured connector, from the settings (tests make them directly)."""

    kind: str  # "okta"
    url: str  # the vendor org's base URL
    token: str = field(repr=False)  # a credential: never in a repr, a log line or a message
    lookback_days: int = 30  # how far back the first pull reads


def configured(settings: Settings) -> tuple[ConnectorConfig, ...]:
    """The connectors whose settings are complete (a half-configured one stays off)."""
    found: list[ConnectorConfig] = []
    if settings.okta is not None:
        url, token = settings.okta
        found.append(ConnectorConfig("okta", url, token, settings.licensebot_okta_lookback_days))
    return tuple(found)


def build(
    config: ConnectorConfig, *, client: httpx.Client, clock: Clock, sleep: Sleep
) -> UsageConnector:
    """The connector for ``config``, talking through ``client``."""
    # Imported here: the vendor modules import this module's types.
    from bot.connectors.okta import OktaConnector

    if config.kind == "okta":
        return OktaConnector(
            url=config.url,
            token=config.token,
            client=client,
            clock=clock,
            sleep=sleep,
            lookback_days=config.lookback_days,
        )
    raise ValueError(f"no connector of kind {config.kind!r}")  # a caller's bug: kinds are ours

"""The composition root: wires the runtime, Bolt, the Slack listeners and the dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot import usage_api, webhooks
from bot.dispatcher import WORKERS as DISPATCH_WORKERS
from bot.dispatcher import Dispatcher
from bot.errors import ConfigError
from bot.metrics import Metrics
from bot.pacing import PER_CHANNEL, Pacer
from bot.runtime import Runtime
from handlers import commands, events, interactions, replies
from handlers.endpoint import SlackEndpoint
from handlers.notifier import SlackNotifier, quiet_logger

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass
class Licensebot:
    rt: Runtime
    bolt: App
    dispatcher: Dispatcher
    wsgi: WSGIApp
    # Provisioning webhooks' HTTP client; closed after the dispatcher's last delivery.
    webhook_http: httpx.Client | None = None

    def close(self) -> None:
        if self.webhook_http is not None:
            self.webhook_http.close()


def web_client(token: str, api_url: str) -> WebClient:
    # 429s and 5xx are retried by the outbox dispatcher, which does not block a request thread.
    return WebClient(
        token=token,
        base_url=api_url,
        logger=quiet_logger(),
        timeout=10,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)],
    )


def assemble(
    rt: Runtime,
    *,
    token: str,
    signing_secret: str,
    api_url: str,
    poll_seconds: float = 1.0,
    api_token: str | None = None,
    pace: timedelta | None = PER_CHANNEL,
    dispatch_workers: int = DISPATCH_WORKERS,
) -> Licensebot:
    """``pace``: the least time between two messages to one channel, on ``rt.clock``
    (None: no pacing, for tests whose clock stands still; Retry-After pauses still apply).
    ``dispatch_workers``: threads delivering the outbox at once."""
    client = web_client(token, api_url)
    try:
        bolt = App(
            client=client,
            signing_secret=signing_secret,
            # Listeners only touch the database (Slack calls go through the outbox), so running
            # them before the response is fast and avoids Bolt's 10 ms ack polling.
            process_before_response=True,
        )
    except BoltError as exc:
        raise ConfigError(
            f"Slack refused SLACK_BOT_TOKEN at {api_url} ({exc}); check the token and "
            "SLACK_API_URL."
        ) from None
    except (SlackRequestError, OSError) as exc:  # URLError is an OSError
        raise ConfigError(
            f"Cannot reach Slack's Web API at {api_url} ({exc}); check SLACK_API_URL and the "
            "network."
        ) from None
    bolt.error(replies.handle_unexpected_error)
    commands.register(bolt, rt)
    interactions.register(bolt, rt)
    events.register(bolt, rt)
    # Redirects are not followed: the signed event goes only to the URL IT put in the catalog.
    webhook_http = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False)
    deliverer = webhooks.WebhookDeliverer(rt, webhook_http)
    slack_notifier = SlackNotifier(rt, client, Pacer(rt.clock, interval=pace))
    dispatcher = Dispatcher(
        rt,
        webhooks.WithWebhooks(slack_notifier, deliverer),
        poll_seconds=poll_seconds,
        on_failed=deliverer.failed,
        workers=dispatch_workers,
    )
    rt.wake_dispatcher = dispatcher.wake
    wsgi = _wsgi(
        rt,
        SlackEndpoint(bolt, signing_secret=signing_secret, path="/slack/events"),
        api_token=api_token,
    )
    return Licensebot(rt=rt, bolt=bolt, dispatcher=dispatcher, wsgi=wsgi, webhook_http=webhook_http)


def _wsgi(rt: Runtime, endpoint: SlackEndpoint, *, api_token: str | None = None) -> WSGIApp:
    metrics = Metrics(rt)
    slack = metrics.observe(endpoint)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            try:
                rt.db.ping()
            except Exception:  # any driver error means "not healthy"; the body says so
                start_response("503 Service Unavailable", [("Content-Type", "application/json")])
                return [b'{"ok":false,"database":"unreachable"}']
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"ok":true}']
        if path == "/slack/events":
            return slack(environ, start_response)
        if path == usage_api.PATH:
            # LICENSEBOT_API_TOKEN; without it the endpoint answers 404 "not enabled".
            return usage_api.handle_usage(rt, api_token, environ, start_response)
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [metrics.exposition()]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"ok":false,"error":"not_found"}']

    return application

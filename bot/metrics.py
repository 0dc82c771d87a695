"""Prometheus metrics: what Slack sent and how fast we answered, plus counts from the database.

Request metrics are per process. Outbox depth, decisions and reveals are read from the
database at scrape time, so every replica reports the same cluster-wide figures.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from bot.runtime import Runtime
from storage.models import AuditEntry, Decision, OutboxMessage

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Slack's deadline is 3 s; the buckets resolve the fast end where a healthy bot lives.
ACK_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
MAX_BODY = 1_000_000  # a larger body is not parsed for its kind (Slack never sends one)


def request_kind(body: bytes, content_type: str) -> str:
    """``command``, an interaction type (``block_actions``…), ``event`` or ``other``."""
    if len(body) > MAX_BODY:
        return "other"
    try:
        if "json" in content_type:
            doc = json.loads(body)
            kind = doc.get("type") if isinstance(doc, dict) else None
            return "event" if kind == "event_callback" else str(kind or "other")[:40]
        form = parse_qs(body.decode("utf-8", "replace"))
        if "command" in form:
            return "command"
        if "payload" in form:
            payload = json.loads(form["payload"][0])
            kind = payload.get("type") if isinstance(payload, dict) else None
            return str(kind or "other")[:40]
        if "ssl_check" in form:
            return "ssl_check"
    except (ValueError, UnicodeDecodeError):
        return "other"
    return "other"


class _DatabaseCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "licensebot_outbox_messages", "Notifications in the outbox by status", labels=["status"]
        )
        decisions = CounterMetricFamily(
            "licensebot_decisions", "Approval steps decided, by outcome", labels=["outcome"]
        )
        with self._rt.db.read() as session:
            for status, count in session.exec(
                select(OutboxMessage.status, func.count()).group_by(col(OutboxMessage.status))
            ):
                depth.add_metric([status], count)
            for outcome, count in session.exec(
                select(Decision.outcome, func.count()).group_by(col(Decision.outcome))
            ):
                decisions.add_metric([outcome], count)
            reveals = session.exec(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "key.revealed")
            ).one()
        yield depth
        yield decisions
        yield CounterMetricFamily("licensebot_key_reveals", "License keys revealed", value=reveals)


class Metrics:
    def __init__(self, rt: Runtime) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "licensebot_slack_requests",
            "Requests from Slack by kind and HTTP status",
            ["kind", "status"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "licensebot_ack_seconds",
            "Time to answer a request from Slack",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(rt))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, app: WSGIApp) -> WSGIApp:
        """Wrap the Slack endpoint: count and time every request by its kind."""

        def observed(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            started = time.perf_counter()
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(body)
            kind = request_kind(body, environ.get("CONTENT_TYPE", ""))
            status = ["000"]

            def recording_start(code: str, headers: Any, *args: Any) -> Any:
                status[0] = code.split(" ", 1)[0]
                return start_response(code, headers, *args)

            result = app(environ, recording_start)
            self.ack_seconds.labels(kind).observe(time.perf_counter() - started)
            self.requests.labels(kind, status[0]).inc()
            return result

        return observed

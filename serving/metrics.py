"""Prometheus metrics of the serving layer's HTTP apps: request latency per route, and an ASGI middleware that
measures it without a per-request Python middleware stack.

Each app builds its own :class:`~prometheus_client.CollectorRegistry` (several apps in one test process never
share counters) and serves it at ``/metrics``. Run with one uvicorn worker per port (the default): with several,
each worker would answer with its own counts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: fine below 10 ms, where the API's answers are."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def request_histogram(registry: CollectorRegistry, prefix: str) -> Histogram:
    return Histogram(f"{prefix}_request_seconds", "Time from request to the end of the answer, per route.",
                     ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=registry)


class RequestTimer:
    """ASGI middleware: observes each HTTP request's seconds under its route template (``/v1/users/{user_id}/
    recent``, not the user's id, so the label set stays small); unmatched paths count as ``unmatched``."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or getattr(route, "path_format", None) or "unmatched"
            self.histogram.labels(scope["method"], template, str(status)).observe(time.perf_counter() - started)


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus' text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST

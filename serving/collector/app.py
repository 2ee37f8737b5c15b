"""The collector's HTTP app: players and apps POST events, the collector answers once Kafka has them.

Endpoints:

* ``POST /v1/events``: a JSON array (``application/json``) or NDJSON (``application/x-ndjson``), optionally
  ``Content-Encoding: gzip``; at most ``collector_max_batch_events`` events and ``collector_max_body_bytes``
  bytes after decompression.
* ``POST /v1/heartbeat``: one heartbeat event (a JSON object), the players' 10-second beat.
* ``GET /healthz``: 200 when Kafka answers and the topics exist, 503 otherwise.
* ``GET /metrics``: Prometheus metrics (events by outcome, request latency per route).

Every valid event goes to its topic keyed by account; every invalid one goes to the dead-letter topic with the
reason. The answer to a POST::

    {"accepted": 998, "rejected": 1, "retry": 1,
     "results": [{"index": 3, "event_id": "e-3", "status": "rejected", "reason": "position_seconds: -1.0 is
                  below the minimum 0", "field": "position_seconds"},
                 {"index": 7, "event_id": "e-7", "status": "retry", "reason": "not acknowledged by Kafka ..."}]}

``results`` lists only the events that were not accepted (``index`` counts the events of the request from 0).
"accepted" means Kafka acknowledged the event; "rejected" means it is on the dead-letter topic and resending it
will not help. When any event has status "retry" the answer is 503 with ``Retry-After``: send those events
again (and only those; the accepted ones are in Kafka). Requests the collector cannot read at all answer 400
(empty body, broken gzip), 413 (over a limit, which the body names) or 415 (content type or encoding); one
that does not arrive whole within ``serving_request_read_timeout_seconds`` is answered 408 and its connection
closed (:mod:`serving.http_protocol`): nothing of it was sent to Kafka, so the player sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from serving.collector.batch import (
    Record,
    RequestRefused,
    check_batch_length,
    check_content_encoding,
    check_content_type,
    parse_body,
    plan_batch,
    read_body,
    summarize,
    too_large,
)
from serving.collector.producer import CollectorProducer
from serving.metrics import RequestTimer, exposition, request_histogram
from warehouse_models.events import EventType
from warehouse_models.settings import Settings, load_settings

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 2
"""Seconds a client is asked to wait before resending what Kafka did not acknowledge."""

_HEARTBEAT_ONLY = frozenset({EventType.HEARTBEAT})


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers)


def _source(request: Request) -> str:
    client = request.client
    return f"http:{client.host}" if client is not None else "http:unknown"


async def _read(request: Request, max_bytes: int) -> bytes:
    """The body, decompressed, within the limit (the whole request is refused as soon as it exceeds it)."""
    gzipped = check_content_encoding(request.headers.get("content-encoding"))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return read_body(chunks, gzipped=gzipped, max_bytes=max_bytes)


class Collector:
    """The request handlers, bound to the settings and a producer."""

    def __init__(self, settings: Settings, producer: CollectorProducer, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.producer = producer
        self.topics = settings.topics
        self.registry = registry
        self.outcomes = Counter("reelytics_collector_events", "Events by outcome: accepted (in Kafka), rejected "
                                "(on the dead-letter topic with the reason), retry (not acknowledged: resend).",
                                ["status"], registry=registry)
        self.refused = Counter("reelytics_collector_requests_refused", "Requests refused whole (400, 413, 415).",
                               ["status"], registry=registry)

    async def events(self, request: Request) -> Response:
        """POST /v1/events: a batch of events."""
        return await self._handle(request, only_types=None)

    async def heartbeat(self, request: Request) -> Response:
        """POST /v1/heartbeat: exactly one heartbeat event."""
        return await self._handle(request, only_types=_HEARTBEAT_ONLY, max_events=1)

    async def _handle(self, request: Request, *, only_types: frozenset[EventType] | None,
                      max_events: int | None = None) -> Response:
        received_at = datetime.now(timezone.utc)
        try:
            check_content_type(request.headers.get("content-type"))
            body = await _read(request, self.settings.collector_max_body_bytes)
            items = parse_body(body)
            check_batch_length(items, max_events or self.settings.collector_max_batch_events)
        except RequestRefused as refused:
            self.refused.labels(str(refused.status_code)).inc()
            logger.info("refused a request from %s: %d %s", _source(request), refused.status_code, refused)
            return _json(refused.body, refused.status_code)
        except ClientDisconnect:
            return Response(status_code=400)
        records = plan_batch(items, topics=self.topics, source=_source(request), received_at=received_at,
                             only_types=only_types)
        errors = await self._publish(records)
        summary = summarize(records, errors)
        for status in ("accepted", "rejected", "retry"):
            if summary.body[status]:
                self.outcomes.labels(status).inc(summary.body[status])
        if summary.retry:
            logger.warning("%d of %d events from %s were not acknowledged by Kafka; answering 503",
                           summary.retry, len(records), _source(request))
            return _json(summary.body, 503, {"Retry-After": str(RETRY_AFTER_S)})
        if summary.body["rejected"]:
            logger.info("%d of %d events from %s rejected to the dead-letter topic", summary.body["rejected"],
                        len(records), _source(request))
        return _json(summary.body)

    async def _publish(self, records: Sequence[Record]) -> list[str | None]:
        try:
            return await self.producer.publish([(r.topic, r.key, r.value) for r in records])
        except Exception as exc:  # the events are not in Kafka: the client must resend, never a 500
            logger.exception("publishing %d records failed", len(records))
            return [f"{exc.__class__.__name__}: {exc}"] * len(records)

    async def metrics(self, _request: Request) -> Response:
        """GET /metrics: Prometheus' text format."""
        body, content_type = exposition(self.registry)
        return Response(body, media_type=content_type)

    async def healthz(self, _request: Request) -> Response:
        """GET /healthz: is Kafka reachable and does it have the topics?"""
        try:
            missing = await asyncio.to_thread(self.producer.missing_topics, self.topics.names())
        except Exception as exc:
            return _json({"status": "unavailable", "kafka": self.settings.kafka_bootstrap_servers,
                          "error": f"Kafka did not answer: {exc}"}, 503)
        if missing:
            return _json({"status": "unavailable", "kafka": self.settings.kafka_bootstrap_servers,
                          "error": f"missing topics: {', '.join(missing)} (`reelytics up` creates them)"}, 503)
        return _json({"status": "ok", "kafka": self.settings.kafka_bootstrap_servers})


def create_app(settings: Settings, *, producer: CollectorProducer | None = None) -> Starlette:
    """The collector app; it starts (and at shutdown flushes) its own producer unless one is given."""
    owned = producer is None
    producer = producer or CollectorProducer(settings)
    registry = CollectorRegistry()
    collector = Collector(settings, producer, registry)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if owned:
            producer.start()
        logger.info("collector ready: Kafka %s, topics %s.*", settings.kafka_bootstrap_servers,
                    settings.kafka_topic_prefix)
        try:
            yield
        finally:
            if owned:
                await asyncio.to_thread(producer.close)

    routes = [
        Route("/v1/events", collector.events, methods=["POST"]),
        Route("/v1/heartbeat", collector.heartbeat, methods=["POST"]),
        Route("/healthz", collector.healthz, methods=["GET"]),
        Route("/metrics", collector.metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(RequestTimer, histogram=request_histogram(registry, "reelytics_collector"))
    return app


def app_from_environment() -> Starlette:
    """The app for the settings in the environment (``REELYTICS_*``): uvicorn's factory in each worker."""
    return create_app(load_settings())

"""Prometheus metrics of the speed layer, served by its main process on ``speed_metrics_port``.

Every query's newest progress (the main process's and the session-state child's alike) is read from Redis at
scrape time (:func:`speed_layer.progress.read_progress`), so one endpoint covers the whole layer:

* ``reelytics_speed_query_lag_seconds{query}``: seconds since the query finished its newest micro-batch;
* ``reelytics_speed_kafka_lag_records{query}``: records on its topics it had not read at that batch;
* ``reelytics_speed_topic_lag_records{query,topic}``: the same, per topic (consumer lag per topic and query);
* ``reelytics_speed_batch_seconds{query}``, ``reelytics_speed_input_rows_per_second{query}``,
  ``reelytics_speed_processed_rows_per_second{query}``, ``reelytics_speed_state_rows{query}``;
* ``reelytics_speed_late_rows_total{query}``: events left to the batch layer as late;
* ``reelytics_speed_dead_letters_total``: records the shared query sent to the dead-letter topic (this process).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from speed_layer.progress import read_progress
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

DEAD_LETTERS = Counter("reelytics_speed_dead_letters", "Records the speed layer sent to the dead-letter topic.")

_GAUGES = {
    "batch_duration_ms": ("reelytics_speed_batch_seconds", "Seconds the newest micro-batch took.", 0.001),
    "input_rows_per_second": ("reelytics_speed_input_rows_per_second", "Rows per second arriving.", 1.0),
    "processed_rows_per_second": ("reelytics_speed_processed_rows_per_second", "Rows per second processed.", 1.0),
    "state_rows": ("reelytics_speed_state_rows", "Rows in the query's state store.", 1.0),
    "kafka_lag": ("reelytics_speed_kafka_lag_records", "Records on the query's topics not read at its newest batch.",
                  1.0),
}


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _started(value: str | None) -> float | None:
    """A progress row's batch start (ISO-8601) as epoch seconds; None when missing or unreadable."""
    try:
        return datetime.fromisoformat(value).timestamp() if value else None
    except ValueError:
        return None


def _topic_lags(value: str | None) -> dict[str, float]:
    """A progress row's ``kafka_lag_by_topic`` (JSON: topic -> records) as numbers; {} when missing or unreadable."""
    try:
        found = json.loads(value) if value else {}
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(topic): float(n) for topic, n in found.items() if isinstance(n, int | float)}


def progress_metrics(rows: list[dict[str, str]], *, now: float) -> Iterator[Any]:
    """The metric families of the queries' progress rows (pure: the rows as Redis holds them)."""
    families = {field: GaugeMetricFamily(name, doc, labels=["query"]) for field, (name, doc, _) in _GAUGES.items()}
    lag = GaugeMetricFamily("reelytics_speed_query_lag_seconds", "Seconds since the query finished its newest "
                            "micro-batch.", labels=["query"])
    topic_lag = GaugeMetricFamily("reelytics_speed_topic_lag_records", "Records on one topic the query had not "
                                  "read at its newest batch.", labels=["query", "topic"])
    late = CounterMetricFamily("reelytics_speed_late_rows", "Events left to the batch layer as late.",
                               labels=["query"])
    for row in rows:
        query = row.get("name", "?").split("@")[0]
        for field, (_, _, scale) in _GAUGES.items():
            value = _number(row.get(field))
            if value is not None:
                families[field].add_metric([query], value * scale)
        began = _started(row.get("timestamp"))
        if began is not None:  # an unreadable time is left out
            finished = began + (_number(row.get("batch_duration_ms")) or 0) / 1000
            lag.add_metric([query], max(0.0, now - finished))
        for topic, records in _topic_lags(row.get("kafka_lag_by_topic")).items():
            topic_lag.add_metric([query, topic], records)
        total = _number(row.get("late_rows_total"))
        if total is not None:
            late.add_metric([query], total)
    yield from families.values()
    yield lag
    yield topic_lag
    yield late


class ProgressCollector(Collector):
    """Reads the progress rows from Redis when Prometheus scrapes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = settings.redis_client()

    def collect(self) -> Iterator[Any]:
        try:
            rows = read_progress(self.client, self.settings.keys)
        except Exception:  # Redis down: the scrape still answers, without these families
            logger.debug("no speed progress for the metrics", exc_info=True)
            return
        yield from progress_metrics(rows, now=time.time())


def serve_metrics(settings: Settings) -> None:
    """Serve ``/metrics`` on ``speed_metrics_host:speed_metrics_port`` in a daemon thread (0 turns it off)."""
    if not settings.speed_metrics_port:
        return
    REGISTRY.register(ProgressCollector(settings))
    try:
        start_http_server(settings.speed_metrics_port, addr=settings.speed_metrics_host)
    except OSError as exc:
        logger.warning("speed metrics not served: port %d on %s: %s (set REELYTICS_SPEED_METRICS_PORT)",
                       settings.speed_metrics_port, settings.speed_metrics_host, exc)
        return
    logger.info("speed metrics on http://%s:%d/metrics", settings.speed_metrics_host, settings.speed_metrics_port)

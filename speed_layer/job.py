"""The speed layer job: one Structured Streaming query per view, Kafka in, Redis (or Kafka) out.

Each view module exports a :class:`speed_layer.query.ViewQuery`; :func:`start_speed_layer` starts one query per
view: it reads the view's topics (:func:`speed_layer.source.kafka_stream`), parses them once with the envelope,
applies the view's pure transform and hands every micro-batch to the view's writer through ``foreachBatch``.
Checkpoints live under ``<checkpoint root>/speed/<view>``; a query killed at any point and restarted re-runs its
unfinished micro-batch with the same id and rows, and the writers are idempotent, so Redis ends up the same.

Triggers: ``processing`` (a micro-batch every ``speed_trigger_seconds``, the long-running job),
``available_now`` (everything in the topics now, then stop: tests and catch-up runs).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from speed_layer.query import SinkContext, ViewQuery
from speed_layer.source import kafka_stream, parse_records, valid_events
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

logger = logging.getLogger(__name__)

VIEW_MODULES: tuple[str, ...] = (
    "engagement", "ctr", "trending", "concurrency", "resume", "recent", "qoe", "view_end", "spikes", "dead_letters",
)
"""Every real-time view, one module each under ``speed_layer/``."""

Trigger = Literal["processing", "available_now"]


class SpeedLayerError(RuntimeError):
    """A speed query failed; the message names the view and Spark's error."""


def views(names: Sequence[str] | None = None) -> list[ViewQuery]:
    """The ViewQuery of each named view (all by default), in :data:`VIEW_MODULES` order."""
    unknown = sorted(set(names or ()) - set(VIEW_MODULES))
    if unknown:
        raise ValueError(f"unknown speed views {unknown}; known: {', '.join(VIEW_MODULES)}")
    chosen = [m for m in VIEW_MODULES if names is None or m in names]
    return [importlib.import_module(f"speed_layer.{module}").QUERY for module in chosen]


def query_name(settings: Settings, view: ViewQuery) -> str:
    """``speed-<view>@<topic prefix>``: unique per deployment, and what progress and status are keyed by."""
    return f"speed-{view.name}@{settings.kafka_topic_prefix}"


def checkpoint_location(settings: Settings, view: ViewQuery) -> str:
    return f"{settings.checkpoint_root_uri.rstrip('/')}/speed/{view.name}"


def view_input(spark: SparkSession, settings: Settings, view: ViewQuery) -> DataFrame:
    """The streaming frame a view's transform gets: valid events, or the raw records (dead letters)."""
    from batch_layer.bronze.transform import kafka_records

    records = kafka_stream(spark, settings, view.topics)
    if view.reads == "records":
        return kafka_records(records)
    return valid_events(parse_records(records))


def _batch_writer(settings: Settings, view: ViewQuery, name: str) -> Callable[[DataFrame, int], None]:
    """The ``foreachBatch`` function of one view: a SinkContext per batch around the view's writer."""
    client = settings.redis_client()
    keys = settings.keys

    def write(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        ctx = SinkContext(settings=settings, client=client, keys=keys, query_name=name, batch_id=batch_id)
        view.write(batch, ctx)
        logger.debug("%s batch %d written in %.0f ms %s", name, batch_id, (time.monotonic() - started) * 1000,
                     ctx.stats or "")

    return write


def start_view(spark: SparkSession, settings: Settings, view: ViewQuery, *, trigger: Trigger = "processing",
               processing_time: str | None = None) -> StreamingQuery:
    """Start one view's query and return it (running)."""
    name = query_name(settings, view)
    rows = view.transform(view_input(spark, settings, view), settings)
    writer = (
        rows.writeStream.queryName(name)
        .outputMode(view.output_mode)
        .option("checkpointLocation", checkpoint_location(settings, view))
        .foreachBatch(_batch_writer(settings, view, name))
    )
    if trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=processing_time or f"{settings.speed_trigger_seconds} seconds")
    query = writer.start()
    logger.info("speed view %s: %s -> Redis (%s)", view.name,
                ", ".join(settings.topics.for_kind(k).name for k in view.topics), trigger)
    return query


def install_progress(spark: SparkSession, settings: Settings) -> Any:
    """Register the progress listener (once per session and key prefix) and return it."""
    from speed_layer.progress import ProgressRecorder

    registry: dict[str, Any] = getattr(spark, "_reelytics_progress", {})
    recorder = registry.get(settings.redis_key_prefix)
    if recorder is None:
        recorder = ProgressRecorder(settings.redis_client(), settings.keys)
        spark.streams.addListener(recorder)
        registry[settings.redis_key_prefix] = recorder
        spark._reelytics_progress = registry  # type: ignore[attr-defined]
    return recorder


def start_speed_layer(spark: SparkSession, settings: Settings, *, names: Sequence[str] | None = None,
                      trigger: Trigger = "processing") -> list[StreamingQuery]:
    """Start the named views (all by default); on a failure to start, stop the ones already started."""
    from infra.kafka import ensure_topics

    ensure_topics(settings)
    install_progress(spark, settings)
    queries: list[StreamingQuery] = []
    try:
        for view in views(names):
            queries.append(start_view(spark, settings, view, trigger=trigger))
    except Exception:
        for query in queries:
            query.stop()
        raise
    return queries


def wait_for(queries: Sequence[StreamingQuery], *, timeout_s: float | None = None, poll_s: float = 2.0) -> None:
    """Wait until every query stopped; raise :class:`SpeedLayerError` (stopping the rest) when one fails."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            for query in queries:
                if query.exception() is not None:
                    raise SpeedLayerError(f"speed query {query.name} failed: {query.exception()}")
            active = [q for q in queries if q.isActive]
            if not active:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise SpeedLayerError(f"speed queries {[q.name for q in active]} still running after "
                                      f"{timeout_s:.0f} s")
            active[0].awaitTermination(max(1, int(poll_s)))
    except BaseException:
        for query in queries:
            if query.isActive:
                query.stop()
        raise


def run_speed_available_now(spark: SparkSession, settings: Settings, *, names: Sequence[str] | None = None,
                            timeout_s: float | None = None) -> None:
    """Bring the named views up to what the topics hold now, then stop (tests, catch-up after downtime)."""
    wait_for(start_speed_layer(spark, settings, names=names, trigger="available_now"), timeout_s=timeout_s)


def run_speed(spark: SparkSession, settings: Settings, *, names: Sequence[str] | None = None) -> None:
    """Run the views as a long-lived stream until one fails or the process is interrupted."""
    wait_for(start_speed_layer(spark, settings, names=names, trigger="processing"))

"""The speed layer job: one Structured Streaming query per view, Kafka in, Redis (or Kafka) out.

Each view module exports a :class:`speed_layer.query.ViewQuery`; :func:`start_speed_layer` starts one query per
view: it reads the view's topics (:func:`speed_layer.source.kafka_stream`), parses them once with the envelope,
applies the view's pure transform and hands every micro-batch to the view's writer through ``foreachBatch``.
Checkpoints live under ``<checkpoint root>/speed/<view>``; a query killed at any point and restarted re-runs its
unfinished micro-batch with the same id and rows, and the writers are idempotent, so Redis ends up the same.

The stateless views (``realtime_capable``: resume, recent, concurrency) share one query, ``latest``: each
micro-batch of valid events goes through every one of their transforms (which run on batch frames as well) and
writers. One query instead of three saves two Kafka reads and two sets of micro-batch overhead per trigger,
which on a two-core machine is most of the cost of a stateless view.

Triggers: ``processing`` (a micro-batch every ``speed_trigger_seconds``, the long-running job),
``available_now`` (everything in the topics now, then stop: tests and catch-up runs).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from speed_layer.query import SinkContext, ViewQuery
from speed_layer.source import kafka_stream, parse_records, valid_events
from warehouse_models.events import TopicKind
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

LATEST_QUERY = "latest"
"""The query that runs every stateless view together."""


@dataclass(frozen=True)
class QueryPlan:
    """One streaming query: its name and the views it feeds (several only for the stateless ones)."""

    name: str
    views: tuple[ViewQuery, ...]

    @property
    def topics(self) -> tuple[TopicKind, ...]:
        return tuple(sorted({kind for view in self.views for kind in view.topics}))

    @property
    def background(self) -> bool:
        return any(view.background for view in self.views)

    @property
    def grouped(self) -> bool:
        return len(self.views) > 1 or self.views[0].name != self.name


def plan_queries(chosen: Sequence[ViewQuery]) -> list[QueryPlan]:
    """One query per stateful view, one for all the stateless ones (in the order the views came)."""
    stateless = tuple(v for v in chosen if v.realtime_capable and v.reads == "events")
    plans: list[QueryPlan] = []
    for view in chosen:
        if view in stateless:
            if view is stateless[0]:
                plans.append(QueryPlan(LATEST_QUERY, stateless))
        else:
            plans.append(QueryPlan(view.name, (view,)))
    return plans


class SpeedLayerError(RuntimeError):
    """A speed query failed; the message names the view and Spark's error."""


def views(names: Sequence[str] | None = None) -> list[ViewQuery]:
    """The ViewQuery of each named view (all by default), in :data:`VIEW_MODULES` order."""
    unknown = sorted(set(names or ()) - set(VIEW_MODULES))
    if unknown:
        raise ValueError(f"unknown speed views {unknown}; known: {', '.join(VIEW_MODULES)}")
    chosen = [m for m in VIEW_MODULES if names is None or m in names]
    return [importlib.import_module(f"speed_layer.{module}").QUERY for module in chosen]


def query_name(settings: Settings, plan: QueryPlan | ViewQuery) -> str:
    """``speed-<query>@<topic prefix>``: unique per deployment, and what progress and status are keyed by."""
    return f"speed-{plan.name}@{settings.kafka_topic_prefix}"


def checkpoint_location(settings: Settings, plan: QueryPlan) -> str:
    return f"{settings.checkpoint_root_uri.rstrip('/')}/speed/{plan.name}"


def query_input(spark: SparkSession, settings: Settings, plan: QueryPlan) -> DataFrame:
    """The streaming frame a query starts from: valid events, or the raw records (dead letters)."""
    from batch_layer.bronze.transform import kafka_records

    # One Spark partition per Kafka partition would mean a task per partition per micro-batch; a few are enough.
    records = kafka_stream(spark, settings, plan.topics, starting_offsets=settings.speed_starting_offsets).coalesce(
        settings.speed_source_partitions)
    if plan.views[0].reads == "records":
        return kafka_records(records)
    return valid_events(parse_records(records))


def _batch_writer(settings: Settings, plan: QueryPlan, name: str) -> Callable[[DataFrame, int], None]:
    """The ``foreachBatch`` function of one query: a SinkContext per batch around its view's writer, or, for
    the grouped stateless views, each view's transform and writer on the batch of valid events."""
    client = settings.redis_client()
    keys = settings.keys

    def write(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        stats: dict[str, Any] = {}
        if not plan.grouped:
            ctx = SinkContext(settings=settings, client=client, keys=keys, query_name=name, batch_id=batch_id)
            plan.views[0].write(batch, ctx)
            stats = ctx.stats
        else:
            batch.persist()
            try:
                for view in plan.views:
                    ctx = SinkContext(settings=settings, client=client, keys=keys, query_name=name,
                                      batch_id=batch_id)
                    view.write(view.transform(batch, settings), ctx)
                    stats[view.name] = ctx.stats
            finally:
                batch.unpersist()
        logger.debug("%s batch %d written in %.0f ms %s", name, batch_id, (time.monotonic() - started) * 1000,
                     stats or "")

    return write


def start_query(spark: SparkSession, settings: Settings, plan: QueryPlan, *, trigger: Trigger = "processing",
                processing_time: str | None = None) -> StreamingQuery:
    """Start one query and return it (running)."""
    name = query_name(settings, plan)
    source = query_input(spark, settings, plan)
    rows = source if plan.grouped else plan.views[0].transform(source, settings)
    writer = (
        rows.writeStream.queryName(name)
        .outputMode(plan.views[0].output_mode)
        .option("checkpointLocation", checkpoint_location(settings, plan))
        .foreachBatch(_batch_writer(settings, plan, name))
    )
    if trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        every = settings.speed_background_trigger_seconds if plan.background else settings.speed_trigger_seconds
        writer = writer.trigger(processingTime=processing_time or f"{every} seconds")
    # The query's jobs run in a fair-scheduler pool of their own (the stream thread inherits this property).
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", plan.name)
    try:
        query = writer.start()
    finally:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)
    logger.info("speed query %s (%s): %s -> Redis (%s)", plan.name, ", ".join(v.name for v in plan.views),
                ", ".join(settings.topics.for_kind(k).name for k in plan.topics), trigger)
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
    # Read when a query starts, for a new checkpoint's state store; the session's own value is put back after.
    shuffle = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", str(settings.speed_shuffle_partitions))
    try:
        for plan in plan_queries(views(names)):
            queries.append(start_query(spark, settings, plan, trigger=trigger))
    except Exception:
        for query in queries:
            query.stop()
        raise
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", shuffle)
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

"""The speed layer job: Structured Streaming queries from Kafka to Redis (or Kafka).

Each view module exports a :class:`speed_layer.query.ViewQuery`. Every view without session state shares one
query, ``views``, whose streaming plan is built once, when it starts: each record is parsed and checked once (the
envelope by one JVM call per record, :func:`speed_layer.source.parse_records`), each re-sent event dropped (Spark
state keyed by event id, :func:`speed_layer.source.deduplicated`), and each record projected to what it
contributes to every view, side by side (:func:`shared_projection`, from each view's
:class:`~warehouse_models.metrics.contributions.Contributions`). Each micro-batch is then collected to the driver
in **one Spark job** (one Arrow collect, no plan built from Python per batch), each view's rows are reduced with
Arrow (:func:`~warehouse_models.metrics.contributions.reduce_table`: filter, group, add) and each view's ``apply``
writes them to Redis (one pipeline or fenced transaction each), the views side by side on a few threads
(``speed_writer_threads``). The additive views (``late_cut``) see only the events inside their topic's allowed
lateness (:mod:`speed_layer.lateness`); the latest-value views (resume,
recent, concurrency) see every valid event; the dead-letter view sees only the records the check refused. The
stateful view (view_end: state per session in the JVM, event-time timers) is a query of its own, on the same 1 s
trigger; its writer also adds each judged session's outcome to the QoE buckets.

Why one shared query, one plan and one job: on a two-core machine most of a micro-batch's cost is fixed
(planning, scheduling, the Kafka read, the commit), so every extra query, job or plan built per batch multiplies
it.

Checkpoints live under ``<checkpoint root>/speed/<query>``; a query killed at any point and restarted re-runs its
unfinished micro-batch with the same id and rows, and the writers are idempotent, so Redis ends up the same.

Triggers: ``processing`` (a micro-batch every ``speed_trigger_seconds``: the long-running job), ``available_now``
(everything in the topics now, then stop: tests and catch-up runs).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from speed_layer.lateness import (
    EVENT_MS,
    TOPIC,
    VALID,
    Cutoff,
    advance,
    late_mask,
    lateness_rows,
    of_checkpoint,
    watermarks_for,
)
from speed_layer.query import SHARED_QUERY, SinkContext, ViewQuery
from speed_layer.source import deduplicated, kafka_stream, parse_records, valid_events
from warehouse_models.events import TopicKind
from warehouse_models.metrics.contributions import reduce_table, stream_columns
from warehouse_models.redis_io import text, utc_from_ms
from warehouse_models.redis_keys import PROGRESS_TTL_SECONDS
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

logger = logging.getLogger(__name__)

VIEW_MODULES: tuple[str, ...] = (
    "resume", "recent", "concurrency", "searches", "releases", "engagement", "ctr", "qoe", "trending", "spikes",
    "dead_letters", "view_end",
)
"""Every real-time view, one module each under ``speed_layer/``. The shared query hands its views to its writer
threads in this order, so the latest-value views apps poll (resume, recent items, "may this stream play?") start
first in each micro-batch."""

Trigger = Literal["processing", "available_now"]



@dataclass(frozen=True)
class QueryPlan:
    """One streaming query: its name and the views it feeds (several only for the stateless ones)."""

    name: str
    views: tuple[ViewQuery, ...]

    @property
    def topics(self) -> tuple[TopicKind, ...]:
        return tuple(sorted({kind for view in self.views for kind in view.topics}))

    @property
    def shared(self) -> bool:
        """The views see each micro-batch as a batch frame (no Spark state)."""
        return not self.views[0].stateful

    @property
    def output_mode(self) -> Literal["update", "append"]:
        """The shared query hands each micro-batch's new records to its views once (append); a stateful query
        emits what its view's state says (update: changed rows, append: final rows)."""
        return "append" if self.shared else self.views[0].output_mode

    def trigger_seconds(self, settings: Settings) -> float:
        """How often the query runs: every ``speed_trigger_seconds``, shared or stateful (no query's state step
        runs Python, so none needs a slower trigger)."""
        return settings.speed_trigger_seconds


_LOCAL_MASTER = re.compile(r"local(?:\[(\d+|\*)(,\s*\d+)?\])?")


def speed_master(settings: Settings) -> str:
    """The Spark master of the speed layer's own process: a local master gets at least
    ``speed_local_task_slots`` task slots (``local[2]`` -> ``local[6]``); any other master is used as it is."""
    master = settings.spark_master.strip()
    match = _LOCAL_MASTER.fullmatch(master)
    if match is None:
        return master
    slots = match.group(1) or "1"
    have = (os.cpu_count() or 1) if slots == "*" else int(slots)
    if have >= settings.speed_local_task_slots:
        return master
    return f"local[{settings.speed_local_task_slots}{match.group(2) or ''}]"


def plan_queries(chosen: Sequence[ViewQuery]) -> list[QueryPlan]:
    """The shared query for every view without Spark state, then one query per stateful view."""
    shared = tuple(v for v in chosen if not v.stateful)
    plans = [QueryPlan(SHARED_QUERY, shared)] if shared else []
    plans += [QueryPlan(v.name, (v,)) for v in chosen if v.stateful]
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
    return settings.speed_query_name(plan.name)


def checkpoint_location(settings: Settings, plan: QueryPlan) -> str:
    return f"{settings.checkpoint_root_uri.rstrip('/')}/speed/{plan.name}"


def shared_projection(records: DataFrame, settings: Settings, plan: QueryPlan) -> DataFrame:
    """The shared query's rows: per record, whether it is a valid event, its event time and topic (for the
    late cut), and what it contributes to each view (:func:`~warehouse_models.metrics.contributions.stream_columns`:
    ``<view>?`` and ``<view>.<column>``). Event views take the valid events of their topics; a ``records`` view
    (dead letters) the Kafka records of its topics with the check's verdict."""
    from pyspark.sql import functions as F

    valid = F.col("violation").isNull()
    columns = [valid.alias(VALID), F.when(valid, F.unix_millis(F.col("event_timestamp"))).alias(EVENT_MS),
               F.col("kafka_topic").alias(TOPIC)]
    for view in plan.views:
        assert view.contributions is not None, f"view {view.name} of the shared query has no contributions"
        in_topics = F.col("kafka_topic").isin(sorted(settings.topics.for_kind(k).name for k in view.topics))
        scope = in_topics if view.reads == "records" else valid & in_topics
        columns += stream_columns(view.name, view.contributions, scope)
    return records.select(*columns)


def query_input(spark: SparkSession, settings: Settings, plan: QueryPlan) -> DataFrame:
    """The streaming frame a query starts from: the shared projection (shared query), or the valid events."""
    # One Spark partition per Kafka partition would mean a task per partition per micro-batch; a few are enough.
    records = kafka_stream(spark, settings, plan.topics, starting_offsets=settings.speed_starting_offsets).coalesce(
        settings.speed_source_partitions)
    # Parsed once, in the stream. Re-sent events are dropped with Spark state: here for the shared query, in their
    # own transform (after their watermark) for the stateful ones.
    parsed = parse_records(records)
    if plan.shared:
        return shared_projection(deduplicated(parsed, settings), settings, plan)
    return valid_events(parsed)


def _read_cutoff(client: Any, key: str) -> Cutoff | None:
    return Cutoff.from_fields({text(k): text(v) for k, v in client.hgetall(key).items()})


def _advance_cutoff(client: Any, settings: Settings, name: str, batch_id: int, stored: Cutoff | None,
                    per_topic: list[dict[str, Any]], checkpoint_id: str) -> dict[str, Any]:
    """Record the cut-off for the next batch (before any view writes) and return the batch's lateness figures:
    how many events it left to the batch layer, the query's total, and its watermark (the oldest of its topics').
    """
    late = sum(int(row["late"]) for row in per_topic)
    cutoff = advance(stored, batch_id, newest={row["kafka_topic"]: int(row["newest"]) for row in per_topic},
                     late=late, lateness_ms=settings.speed_allowed_lateness_seconds * 1000,
                     checkpoint_id=checkpoint_id)
    client.hset(settings.keys.speed_cutoff(name), mapping=cutoff.fields())
    figures: dict[str, Any] = {"late_rows_dropped": late, "late_rows_total": cutoff.late_total}
    if cutoff.used:
        figures["watermark"] = utc_from_ms(min(cutoff.used.values())).isoformat()
    if late:
        logger.info("%s batch %d: %d events older than their topic's watermark left to the batch layer", name,
                    batch_id, late)
    return figures


def _record_progress(client: Any, settings: Settings, name: str, fields: dict[str, Any]) -> None:
    """Put a shared batch's own figures in the query's progress row, and register the query there (not only
    through the progress listener, whose events arrive asynchronously)."""
    keys = settings.keys
    pipe = client.pipeline(transaction=False)
    pipe.hset(keys.speed_progress(name), mapping={"name": name, **fields})
    pipe.sadd(keys.speed_queries(), name)
    pipe.expire(keys.speed_queries(), PROGRESS_TTL_SECONDS)
    pipe.expire(keys.speed_progress(name), PROGRESS_TTL_SECONDS)
    pipe.execute()


SHARED_QUERY_SPARK_JOBS = 1
"""Spark jobs a micro-batch of the shared query runs in its writer: one, whatever the number of views."""


def shared_writer(settings: Settings, plan: QueryPlan, name: str) -> Callable[[DataFrame, int], None]:
    """The ``foreachBatch`` function of the shared query: the micro-batch's projection collected in one Spark job,
    the late events' cut-off recorded, then each view's rows reduced with Arrow and written to Redis (one pipeline
    or script call each) by ``speed_writer_threads`` threads side by side, latest-value views first."""
    import pyarrow.compute as pc

    client = settings.redis_client(lean=True)
    keys = settings.keys

    def write_view(view: ViewQuery, table: Any, on_time: Any, batch_id: int, checkpoint_id: str
                   ) -> tuple[int, dict[str, Any]]:
        started = time.monotonic()
        assert view.contributions is not None and view.apply is not None, f"view {view.name} is not shared"
        rows = reduce_table(table, view.name, view.contributions, keep=on_time if view.late_cut else None)
        ctx = SinkContext(settings=settings, client=client, keys=keys, query_name=f"{name}/{view.name}",
                          batch_id=batch_id, checkpoint_id=checkpoint_id)
        view.apply(rows, ctx)
        return round((time.monotonic() - started) * 1000), ctx.stats

    def write(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        spent: dict[str, int] = {}
        stats: dict[str, Any] = {}
        progress: dict[str, Any] = {"batch_id": batch_id}
        sc = batch.sparkSession.sparkContext
        # The query's id, kept in its checkpoint: the fences and the cut-off record are the checkpoint's own.
        checkpoint_id = sc.getLocalProperty("sql.streaming.queryId") or ""
        group = f"{name}/batch-{batch_id}-{time.monotonic_ns()}"
        sc.setLocalProperty("spark.jobGroup.id", group)
        try:
            # The whole micro-batch (Kafka read, parse, de-duplication, every view's contributions) in one job.
            table = batch.toArrow()
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]  # None clears it
        spent["spark"] = round((time.monotonic() - started) * 1000)
        progress["spark_jobs"] = len(sc.statusTracker().getJobIdsForGroup(group))
        progress["rows"] = table.num_rows
        on_time = None
        if any(view.late_cut for view in plan.views):
            # Recorded before any view writes; the latest-value views see every event, the additive ones these.
            cut_started = time.monotonic()
            recorded = _read_cutoff(client, keys.speed_cutoff(name))
            stored = of_checkpoint(recorded, checkpoint_id)
            if recorded is not None and stored is None:
                logger.warning("%s: the cut-off record in Redis belongs to another checkpoint (batch %d); this "
                               "checkpoint starts its own", name, recorded.batch_id)
            late = late_mask(table, watermarks_for(stored, batch_id))
            on_time = pc.invert(late)
            progress.update(_advance_cutoff(client, settings, name, batch_id, stored, lateness_rows(table, late),
                                            checkpoint_id))
            spent["late_cut"] = round((time.monotonic() - cut_started) * 1000)
        views_started = time.monotonic()
        failures: list[tuple[str, BaseException]] = []
        # The views are independent (each its own keys and fence), so they are written side by side: Redis executes
        # one view's commands while Python prepares another's, and Arrow's kernels run without the GIL. The pool
        # lives for the batch (its threads end with it). The views that send at least once run after the others
        # landed, so a failing view does not make them send twice.
        waves = [[v for v in plan.views if v.repeatable], [v for v in plan.views if not v.repeatable]]
        with ThreadPoolExecutor(max_workers=settings.speed_writer_threads,
                                thread_name_prefix=f"{plan.name}-writer") as pool:
            for wave in waves:
                if failures:
                    break
                futures = [(view.name, pool.submit(write_view, view, table, on_time, batch_id, checkpoint_id))
                           for view in wave]
                for view_name, future in futures:
                    try:
                        spent[view_name], stats[view_name] = future.result()
                    except BaseException as error:  # every view finishes first; raised below
                        failures.append((view_name, error))
        spent["views"] = round((time.monotonic() - views_started) * 1000)
        if failures:
            for failed_view, failure in failures:
                logger.error("%s batch %d: view %s failed: %s", name, batch_id, failed_view, failure,
                             exc_info=failure)
            logger.error("%s batch %d: %d view(s) failed; the micro-batch fails, and run again from the checkpoint "
                         "it skips the views that landed", name, batch_id, len(failures))
            raise failures[0][1]
        # Where the batch's time went: the one Spark job, the cut-off, each view's reduction and Redis writes
        # (side by side, so they add up to more than ``views``, the wall time of them all).
        progress["view_ms"] = " ".join(f"{k}={v}" for k, v in spent.items())
        _record_progress(client, settings, name, progress)
        logger.debug("%s batch %d written in %.0f ms %s %s", name, batch_id, (time.monotonic() - started) * 1000,
                     progress, stats)

    return write


def _stateful_writer(settings: Settings, plan: QueryPlan, name: str) -> Callable[[DataFrame, int], None]:
    """The ``foreachBatch`` function of a stateful view's query: a SinkContext per batch around its writer."""
    client = settings.redis_client(lean=True)
    view = plan.views[0]

    def write(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        ctx = SinkContext(settings=settings, client=client, keys=settings.keys, query_name=name, batch_id=batch_id,
                          checkpoint_id=batch.sparkSession.sparkContext.getLocalProperty("sql.streaming.queryId") or "")
        view.write(batch, ctx)
        logger.debug("%s batch %d written in %.0f ms %s", name, batch_id, (time.monotonic() - started) * 1000,
                     ctx.stats or "")

    return write


def start_query(spark: SparkSession, settings: Settings, plan: QueryPlan, *, trigger: Trigger = "processing",
                processing_time: str | None = None) -> StreamingQuery:
    """Start one query and return it (running)."""
    name = query_name(settings, plan)
    source = query_input(spark, settings, plan)
    if plan.shared:
        rows, sink = source, shared_writer(settings, plan, name)
    else:
        rows, sink = plan.views[0].transform(source, settings), _stateful_writer(settings, plan, name)
    writer = (
        rows.writeStream.queryName(name)
        .outputMode(plan.output_mode)
        .option("checkpointLocation", checkpoint_location(settings, plan))
        .foreachBatch(sink)
    )
    if trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=processing_time or f"{plan.trigger_seconds(settings)} seconds")
    # The query's jobs run in a fair-scheduler pool of their own (the stream thread inherits this property).
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", plan.name)
    try:
        query = writer.start()
    finally:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]  # None clears it
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
        recorder.install(spark)
        registry[settings.redis_key_prefix] = recorder
        spark._reelytics_progress = registry  # type: ignore[attr-defined]
    return recorder


def speed_session_conf(settings: Settings) -> dict[str, str]:
    """The Spark settings the speed queries run with (set on the session while they start)."""
    return {
        # A new checkpoint's state partitions (and the shuffle of the shared query's de-duplication).
        "spark.sql.shuffle.partitions": str(settings.speed_shuffle_partitions),
        # Adaptive execution re-plans a job between its stages: on a micro-batch of a few thousand rows that costs
        # more than it saves (measured: the shared query's job 1.15 s -> 0.69 s on a 1,000-event batch without it).
        "spark.sql.adaptive.enabled": "false",
    }


def start_speed_layer(spark: SparkSession, settings: Settings, *, names: Sequence[str] | None = None,
                      trigger: Trigger = "processing") -> list[StreamingQuery]:
    """Start the named views (all by default); on a failure to start, stop the ones already started."""
    from infra.kafka import ensure_topics

    ensure_topics(settings)
    install_progress(spark, settings)
    queries: list[StreamingQuery] = []
    # Each query runs on a copy of the session's settings taken when it starts: these hold for its micro-batches,
    # and the session's own values are put back after.
    speed_conf = speed_session_conf(settings)
    saved = {key: spark.conf.get(key, None) for key in speed_conf}
    for key, value in speed_conf.items():
        spark.conf.set(key, value)
    try:
        for plan in plan_queries(views(names)):
            queries.append(start_query(spark, settings, plan, trigger=trigger))
    except Exception:
        for query in queries:
            query.stop()
        raise
    finally:
        for key, before in saved.items():
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)
    return queries


def wait_for(queries: Sequence[StreamingQuery], *, timeout_s: float | None = None, poll_s: float = 2.0,
             alive: Callable[[], bool] | None = None) -> None:
    """Wait until every query stopped; raise :class:`SpeedLayerError` (stopping the rest) when one fails, or when
    ``alive`` (e.g. the background queries' process) says False. The progress events the JVM listener holds when
    they stop are recorded before this returns."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            if alive is not None and not alive():
                raise SpeedLayerError("the process of the session-state queries stopped: see its log lines above; "
                                      "restart the speed layer (the queries continue from their checkpoints)")
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
    finally:
        from speed_layer.progress import drain_all

        drain_all()


def run_speed_available_now(spark: SparkSession, settings: Settings, *, names: Sequence[str] | None = None,
                            timeout_s: float | None = None) -> None:
    """Bring the named views up to what the topics hold now, then stop (tests, catch-up after downtime)."""
    wait_for(start_speed_layer(spark, settings, names=names, trigger="available_now"), timeout_s=timeout_s)


def run_speed(spark: SparkSession, settings: Settings, *, names: Sequence[str] | None = None,
              alive: Callable[[], bool] | None = None) -> None:
    """Run the views as a long-lived stream until one fails, ``alive`` says False, or the process is interrupted."""
    wait_for(start_speed_layer(spark, settings, names=names, trigger="processing"), alive=alive)

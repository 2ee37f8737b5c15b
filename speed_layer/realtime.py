"""The resume view in Spark's real-time mode: long-running tasks instead of micro-batches.

Kafka playback topic -> the shared envelope parse and check (:func:`speed_layer.source.parse_records`,
:func:`speed_layer.source.valid_events`) -> the view's own rows (its contributions,
:data:`speed_layer.resume.CONTRIBUTIONS`) -> a ``ForeachWriter`` that runs the view's compare-and-set
(:func:`speed_layer.resume.set_if_newer`) per row. The query is stateless, in update mode, with
``trigger(realTime=...)``: Spark keeps one task per Kafka partition running for each batch (a checkpoint interval,
``speed_realtime_checkpoint_seconds``) and moves records through as they arrive, so the Spark master needs at least
as many task slots as the topic has partitions.

A Python ``ForeachWriter`` is fed in chunks: the JVM pickles the rows it has for the Python worker in groups of
1, 2, 4, ... rows (growing while a chunk stays under 1 MB) and waits until a group is full or the batch ends.
A row therefore can wait up to a batch duration when the rate is low, and the first rows of each batch go
through at once.

Exactly-once effect as in the micro-batch writer: a batch re-run after a crash writes the same positions again,
and the compare-and-set only moves a position forward in event time, so Redis ends up the same.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from speed_layer.job import QueryPlan, checkpoint_location, install_progress, query_name, wait_for
from speed_layer.resume import QUERY, set_if_newer
from speed_layer.source import kafka_stream, parse_records, valid_events
from warehouse_models.events import TopicKind
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import Row, SparkSession
    from pyspark.sql.streaming import StreamingQuery

logger = logging.getLogger(__name__)

PLAN = QueryPlan("resume-realtime", (QUERY,))
"""The real-time query: its own name and checkpoint folder, beside the shared micro-batch query."""


class RealtimeModeError(RuntimeError):
    """The real-time query cannot run with this Spark master; the message says what to change."""


class ResumeForeachWriter:
    """Spark's ``ForeachWriter`` contract for the resume view: one compare-and-set per row.

    Pickled to the Python workers; each (partition, batch) opens its own Redis client.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: redis.Redis | None = None

    def open(self, partition_id: int, epoch_id: int) -> bool:
        """Connect to Redis for this partition's batch; True: every row of it is to be processed."""
        self._client = self.settings.redis_client()
        return True

    def process(self, row: Row) -> None:
        """Move this row's (user, title) position forward in event time only."""
        assert self._client is not None, "open() runs before process()"
        set_if_newer(self._client, self.settings.keys,
                     {row["user_id"]: {row["content_id"]: (int(row["event_time_ms"]), float(row["position_seconds"]))}})

    def close(self, error: BaseException | None) -> None:
        """Disconnect; Spark reports ``error`` itself and re-runs the batch from its checkpoint."""
        if self._client is not None:
            self._client.close()
            self._client = None


def task_slots_needed(settings: Settings) -> int:
    """One long-running task per partition of the playback topic."""
    return settings.topics.for_kind(TopicKind.PLAYBACK).partitions


def check_task_slots(spark: SparkSession, settings: Settings) -> None:
    """Refuse to start when Spark has fewer task slots than the topic has partitions (the tasks would wait)."""
    needed, slots = task_slots_needed(settings), spark.sparkContext.defaultParallelism
    if slots < needed:
        raise RealtimeModeError(
            f"real-time mode runs one long-running task per Kafka partition: {settings.topics.playback.name} has "
            f"{needed} partitions but Spark master {settings.spark_master} gives {slots} task slots; set "
            f"REELYTICS_SPARK_MASTER=local[{needed}] (or more cores on a cluster)")


def local_master(settings: Settings) -> str:
    """The smallest local master real-time mode can run the resume view on: ``local[<partitions>]``."""
    return f"local[{task_slots_needed(settings)}]"


def start_realtime_resume(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """Start the resume view as a real-time query (Kafka -> Redis) and return it (running)."""
    from infra.kafka import ensure_topics

    check_task_slots(spark, settings)
    ensure_topics(settings)
    install_progress(spark, settings)
    # No coalesce (unlike the micro-batch query): each Kafka partition is read by its own long-running task.
    records = kafka_stream(spark, settings, PLAN.topics, starting_offsets=settings.speed_starting_offsets)
    rows = QUERY.transform(valid_events(parse_records(records)), settings)
    every = f"{settings.speed_realtime_checkpoint_seconds:g} seconds"
    query = (
        rows.writeStream.queryName(query_name(settings, PLAN))
        .outputMode("update")
        .option("checkpointLocation", checkpoint_location(settings, PLAN))
        .foreach(ResumeForeachWriter(settings))
        .trigger(realTime=every)  # type: ignore[call-overload]  # the overloads of pyspark 4.2 omit realTime
        .start()
    )
    logger.info("real-time query %s: %s -> Redis (batch duration %s, master %s)", PLAN.name,
                settings.topics.playback.name, every, settings.spark_master)
    return query


def run_realtime_resume(spark: SparkSession, settings: Settings, *, timeout_s: float | None = None) -> None:
    """Run the real-time resume query until it fails, is stopped, or the process is interrupted."""
    wait_for([start_realtime_resume(spark, settings)], timeout_s=timeout_s)


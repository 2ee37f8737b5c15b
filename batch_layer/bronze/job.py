"""The bronze job: one Structured Streaming query per topic, Kafka into its bronze Delta table.

Each query reads its topic from the earliest offset it has not yet committed, applies
:func:`batch_layer.bronze.transform.bronze_frame` and appends to the table, partitioned by ``ingest_date``.
The checkpoint (``<checkpoint root>/bronze/<table>``) records the offsets of every micro-batch before it runs,
and the Delta sink records the query id and batch id in the same commit as the rows, so a job killed at any
point and restarted from its checkpoint re-runs the unfinished batch over the same offsets and writes it once.

It runs as a long-lived stream (``continuous``: a micro-batch every ``processing_time``) or as
``available_now`` (everything up to the offsets present at start, then stop), which is what an hourly
Dagster asset calls through :func:`run_bronze_available_now`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from batch_layer.bronze.transform import bronze_frame
from batch_layer.delta_tables import create_table
from warehouse_models.tables import BRONZE_TABLES, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

Trigger = Literal["available_now", "continuous"]


class BronzeError(RuntimeError):
    """A bronze query failed; the message names the table and Spark's error."""


def checkpoint_location(settings: Settings, spec: TableSpec) -> str:
    """Where the query of one bronze table keeps its checkpoint."""
    return f"{settings.checkpoint_root_uri.rstrip('/')}/bronze/{spec.name}"


def topic_of(settings: Settings, spec: TableSpec) -> str:
    """The Kafka topic a bronze table is read from."""
    if spec.source_topic is None:
        raise ValueError(f"{spec.name} has no source topic")
    return settings.topics.for_kind(spec.source_topic).name


def query_name(settings: Settings, spec: TableSpec) -> str:
    """A query name unique per table and topic prefix (names must be unique among a session's queries)."""
    return f"{spec.name}@{settings.kafka_topic_prefix}"


def ensure_bronze_table(spark: SparkSession, settings: Settings, spec: TableSpec) -> str:
    """Create the table (declared column order and types, partitioned by ``ingest_date``) if it is missing.

    Creating it up front, rather than letting the first micro-batch infer it, gives every reader (Spark,
    deltalake, DuckDB) the declared schema from the first moment, even before any record arrived.
    """
    return create_table(spark, spec, spec.path(settings.delta_root_uri))


def start_bronze(
    settings: Settings,
    spark: SparkSession,
    *,
    trigger: Trigger = "available_now",
    processing_time: str = "10 seconds",
    tables: Sequence[TableSpec] = BRONZE_TABLES,
    max_offsets_per_trigger: int | None = None,
) -> list[StreamingQuery]:
    """Start one streaming query per bronze table and return them (running; the caller waits or stops them).

    Args:
        settings: topics, Delta root and checkpoint root.
        spark: a session with Delta's extension and the Kafka connector (``infra.spark.build_spark_session``).
        trigger: ``available_now`` reads what the topics hold at start and stops; ``continuous`` runs a
            micro-batch every ``processing_time`` until stopped.
        processing_time: the micro-batch interval of ``continuous``.
        tables: which bronze tables to run (default: all five).
        max_offsets_per_trigger: cap on records per micro-batch (bounds memory on a large backlog).
    """
    from infra.kafka import ensure_topics

    ensure_topics(settings)
    queries: list[StreamingQuery] = []
    try:
        for spec in tables:
            path = ensure_bronze_table(spark, settings, spec)
            reader = (
                spark.readStream.format("kafka")
                .options(**settings.spark_kafka_source_options())
                .option("subscribe", topic_of(settings, spec))
                .option("startingOffsets", "earliest")
            )
            if max_offsets_per_trigger is not None:
                reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
            writer = (
                bronze_frame(reader.load(), spec).writeStream.format("delta")
                .queryName(query_name(settings, spec))
                .outputMode("append")
                .partitionBy(*spec.partition_by)
                .option("checkpointLocation", checkpoint_location(settings, spec))
            )
            writer = writer.trigger(availableNow=True) if trigger == "available_now" else \
                writer.trigger(processingTime=processing_time)
            queries.append(writer.start(path))
            logger.info("bronze query %s: %s -> %s (%s)", spec.name, topic_of(settings, spec), path, trigger)
    except Exception:
        for query in queries:
            query.stop()
        raise
    return queries


def rows_added(spark: SparkSession, path: str, *, after_version: int) -> int:
    """Rows the commits after ``after_version`` appended to a Delta table (from the Delta history)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    history = DeltaTable.forPath(spark, path).history().where(F.col("version") > after_version)
    total = 0
    for row in history.select("operationMetrics").collect():
        metrics = row["operationMetrics"] or {}
        total += int(metrics.get("numOutputRows", 0))
    return total


def table_version(spark: SparkSession, path: str) -> int:
    """The newest version of a Delta table."""
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def wait_for(
    queries: Sequence[StreamingQuery],
    *,
    timeout_s: float | None = None,
    on_progress: Callable[[StreamingQuery], None] | None = None,
    poll_s: int = 5,
) -> None:
    """Wait until every query has stopped; raise :class:`BronzeError` (stopping the rest) when one fails.

    ``on_progress`` is called for each active query every ``poll_s`` seconds (e.g. to log rows per second).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            for query in queries:
                if query.exception() is not None:
                    raise BronzeError(f"bronze query {query.name} failed: {query.exception()}")
            active = [q for q in queries if q.isActive]
            if not active:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise BronzeError(f"bronze queries {[q.name for q in active]} still running after {timeout_s:.0f} s")
            active[0].awaitTermination(max(1, poll_s))
            if on_progress is not None:
                for query in active:
                    if query.isActive:
                        on_progress(query)
    except BaseException:
        for query in queries:
            if query.isActive:
                query.stop()
        raise


def run_bronze_available_now(
    settings: Settings,
    spark: SparkSession,
    *,
    tables: Sequence[TableSpec] = BRONZE_TABLES,
    max_offsets_per_trigger: int | None = None,
    timeout_s: float | None = None,
    on_progress: Callable[[StreamingQuery], None] | None = None,
) -> dict[str, int]:
    """Bring every bronze table up to the offsets the topics hold now; return the rows added per table.

    Safe to run again at once (it adds nothing) and after a crash of any bronze run (each record once).
    """
    paths = {spec.name: spec.path(settings.delta_root_uri) for spec in tables}
    for spec in tables:
        ensure_bronze_table(spark, settings, spec)
    before = {name: table_version(spark, path) for name, path in paths.items()}
    queries = start_bronze(settings, spark, trigger="available_now", tables=tables,
                           max_offsets_per_trigger=max_offsets_per_trigger)
    wait_for(queries, timeout_s=timeout_s, on_progress=on_progress)
    added = {name: rows_added(spark, path, after_version=before[name]) for name, path in paths.items()}
    logger.info("bronze available-now added %s", added)
    return added


class ProgressLog:
    """An ``on_progress`` callback that logs each new micro-batch of a query once (rows and rows per second)."""

    def __init__(self, log: logging.Logger = logger) -> None:
        self.log = log
        self._last_batch: dict[str, int] = {}

    def __call__(self, query: StreamingQuery) -> None:
        """Log the query's newest progress when it is about a batch not logged yet."""
        progress = query.lastProgress
        if not progress:
            return
        name = query.name or str(query.id)
        batch = int(progress.get("batchId", -1))
        if self._last_batch.get(name) == batch:
            return
        self._last_batch[name] = batch
        self.log.info("%s: batch %d, %d rows, %.0f rows/s", name, batch, int(progress.get("numInputRows", 0)),
                      float(progress.get("processedRowsPerSecond") or 0.0))


def run_bronze_continuous(settings: Settings, spark: SparkSession, *, processing_time: str = "10 seconds",
                          tables: Sequence[TableSpec] = BRONZE_TABLES, max_offsets_per_trigger: int | None = None,
                          on_progress: Callable[[StreamingQuery], None] | None = None) -> None:
    """Run the bronze queries as a long-lived stream until one fails or the caller is interrupted."""
    queries = start_bronze(settings, spark, trigger="continuous", processing_time=processing_time, tables=tables,
                           max_offsets_per_trigger=max_offsets_per_trigger)
    wait_for(queries, on_progress=on_progress)

"""The silver job: rebuild whole event-hour partitions of ``silver_events`` from the bronze Delta tables.

An hourly run (or a backfill) names the event hours to rebuild; :func:`affected_hours` finds them from what
bronze ingested since a point, so a late event re-opens the hour of its event time. Each build reads the bronze
rows of those hours plus a margin (:data:`SESSION_SPAN`, so sessions crossing an hour boundary are stitched
from their other events), applies :func:`batch_layer.silver.transform.silver_events` and overwrites exactly
those ``event_hour`` partitions with Delta's ``replaceWhere``: a re-run writes the same rows again, never twice.

The small Delta helpers here (create a table from its spec, overwrite named partitions) serve the gold job too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from batch_layer.silver.transform import LATE_GRACE, affected_event_hours, silver_events
from warehouse_models.tables import BRONZE_DERIVED, BRONZE_INTERACTIONS, BRONZE_PLAYBACK, SILVER_EVENTS, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

SILVER_SOURCES: tuple[TableSpec, ...] = (BRONZE_PLAYBACK, BRONZE_INTERACTIONS, BRONZE_DERIVED)
"""The bronze tables silver reads (the catalog goes to the dimensions, dead letters stay in bronze)."""

SESSION_SPAN = timedelta(hours=6)
"""How far around the rebuilt hours the job reads bronze to stitch sessions that cross an hour boundary."""

_HOUR = timedelta(hours=1)


# --- Delta helpers shared with the gold job ---------------------------------------------------------------------


def ensure_table(spark: SparkSession, settings: Settings, spec: TableSpec) -> str:
    """Create the table from its spec (declared columns, types, nullability, partitioning) if it is missing."""
    from delta.tables import DeltaTable

    path = spec.path(settings.delta_root_uri)
    builder = DeltaTable.createIfNotExists(spark).location(path).comment(spec.doc)
    for column in spec.columns:
        builder = builder.addColumn(column.name, column.type, nullable=column.nullable, comment=column.doc)
    if spec.partition_by:
        builder = builder.partitionedBy(*spec.partition_by)
    builder.execute()
    return path


def read_table(spark: SparkSession, settings: Settings, spec: TableSpec) -> DataFrame:
    """The current version of a table (created empty first when it does not exist yet)."""
    return spark.read.format("delta").load(ensure_table(spark, settings, spec))


def utc_hour(value: datetime) -> datetime:
    """An aware time as the UTC hour it falls in (naive times are refused: they are ambiguous)."""
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; pass aware UTC times")
    return value.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def from_spark_timestamp(value: datetime) -> datetime:
    """A timestamp collected from Spark (naive, in the Python process's local time) as an aware UTC time."""
    return value.astimezone(timezone.utc)


def partition_predicate(column: str, values: Iterable[datetime | date]) -> str:
    """A ``replaceWhere`` predicate selecting the named partitions (UTC timestamps or dates)."""
    literals = sorted({
        f"TIMESTAMP '{utc_hour(value).strftime('%Y-%m-%d %H:%M:%S')}+00:00'" if isinstance(value, datetime)
        else f"DATE '{value.isoformat()}'"
        for value in values
    })
    if not literals:
        raise ValueError(f"no {column} partitions to overwrite")
    return f"{column} IN ({', '.join(literals)})"


def sized_for_readers(writer: DataFrameWriter) -> DataFrameWriter:
    """A Delta write with optimized writes: one shuffle by the partition columns before the files are written, so
    each partition gets one file (more only past Delta's bin size, 512 MiB) instead of one per task that held
    its rows. The gold tables are written so: analysts' readers pay per file, not per row."""
    return writer.option("optimizeWrite", "true")


def overwrite_partitions(df: DataFrame, spec: TableSpec, path: str, *,
                         values: Iterable[datetime | date], for_readers: bool = False) -> None:
    """Replace the named partitions of the table with ``df`` in one Delta commit (``replaceWhere``).

    Delta checks that every written row matches the predicate, and the partitions that ``df`` has no rows for
    are emptied: the table then holds exactly what this build computed for them. ``for_readers``: files sized
    for readers (:func:`sized_for_readers`).
    """
    (column,) = spec.partition_by
    predicate = partition_predicate(column, values)
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
    (sized_for_readers(writer) if for_readers else writer).save(path)
    logger.info("%s: overwrote %s", spec.name, predicate)


# --- silver ------------------------------------------------------------------------------------------------------


def bronze_viewer_rows(spark: SparkSession, settings: Settings) -> DataFrame:
    """The rows of the bronze playback, interactions and derived tables, as one frame."""
    frames = [read_table(spark, settings, spec) for spec in SILVER_SOURCES]
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows


def affected_hours(spark: SparkSession, settings: Settings, *, since: datetime) -> set[datetime]:
    """The event hours (aware UTC) that bronze rows ingested after ``since`` put new data in.

    These are the silver partitions to rebuild after a bronze run: a late event's hour is among them even when
    that hour was built before, as are the hours of the other events of every session a new row belongs to.
    """
    from pyspark.sql import functions as F

    since = since.astimezone(timezone.utc)
    bronze = bronze_viewer_rows(spark, settings)
    new_rows = bronze.where((F.col("ingest_date") >= F.lit(since.date())) & (F.col("ingested_at") > F.lit(since)))
    hours = {from_spark_timestamp(row["event_hour"]) for row in affected_event_hours(new_rows, bronze).collect()}
    logger.info("bronze rows ingested after %s touch %d event hours", since.isoformat(), len(hours))
    return hours


def build_silver(spark: SparkSession, settings: Settings, *, hours: Iterable[datetime],
                 grace: timedelta = LATE_GRACE, session_span: timedelta = SESSION_SPAN) -> dict[str, int]:
    """Rebuild the given event-hour partitions of ``silver_events`` from bronze; return counts for metadata.

    Args:
        spark: a session with Delta's SQL extension.
        settings: the Delta root.
        hours: event hours to rebuild (aware; any time within the hour names it).
        grace: the late-event grace period after an hour closes.
        session_span: how much bronze around the hours is read to stitch sessions.

    Returns:
        ``hours`` rebuilt, silver ``rows`` now in them and how many of those are ``late_rows``.
    """
    from pyspark.sql import functions as F

    wanted = sorted({utc_hour(h) for h in hours})
    path = ensure_table(spark, settings, SILVER_EVENTS)
    if not wanted:
        return {"hours": 0, "rows": 0, "late_rows": 0}
    low, high = wanted[0] - session_span, wanted[-1] + _HOUR + session_span
    bronze = bronze_viewer_rows(spark, settings).where(
        (F.col("event_timestamp") >= F.lit(low)) & (F.col("event_timestamp") < F.lit(high))
    )
    overwrite_partitions(silver_events(bronze, hours=wanted, grace=grace), SILVER_EVENTS, path, values=wanted)
    written = (
        spark.read.format("delta").load(path)
        .where(F.col("event_hour").isin(*[F.lit(h) for h in wanted]))
        .agg(F.count(F.lit(1)).alias("rows"), F.count_if(F.col("is_late")).alias("late_rows"))
        .collect()[0]
    )
    counts = {"hours": len(wanted), "rows": int(written["rows"]), "late_rows": int(written["late_rows"] or 0)}
    logger.info("silver rebuilt %s", counts)
    return counts


def hours_between(start: datetime, end: datetime) -> Sequence[datetime]:
    """Every UTC hour from the one holding ``start`` up to (not including) ``end``."""
    hour, stop = utc_hour(start), end.astimezone(timezone.utc)
    hours: list[datetime] = []
    while hour < stop:
        hours.append(hour)
        hour += _HOUR
    return hours

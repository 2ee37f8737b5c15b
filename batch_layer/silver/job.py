"""The silver job: rebuild whole event-hour partitions of ``silver_events`` from the bronze Delta tables.

An hourly run (or a backfill) names the event hours to rebuild; :func:`affected_hours` finds them from what
bronze ingested since a point, so a late event re-opens the hour of its event time. A build reads the bronze
rows of those hours only, de-duplicates them and overwrites exactly those ``event_hour`` partitions with Delta's
``replaceWhere``: a re-run writes the same rows again, never twice.

Sessions cross hour boundaries, and an event a client slimmed down takes its missing identity fields from the
session's earliest events that carry them, possibly in other hours. So each build also writes, per hour and
session, the earliest value of each identity field its hour holds (``silver_session_hours``, a few hundred bytes
per session), and fills its own events from those rows of the hours within :data:`SESSION_SPAN`: the
neighbours' events are never read. When a build changes a session's values, the other hours of that session
that have events to fill are rebuilt with it (``reopened``), so the result does not depend on the order in which
hours are built: once every hour is built, silver equals a build of all the hours at once.

The small Delta helpers here (create a table from its spec, overwrite named partitions) serve the gold job too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from batch_layer.bronze.transform import conform
from batch_layer.delta_tables import create_table
from batch_layer.silver.transform import (
    KAFKA_ORDER,
    LATE_GRACE,
    affected_event_hours,
    deduplicate,
    duplicate_ids,
    identity_for_hours,
    keep_first_copies,
    session_hours,
    stitch_from,
    valid_viewer_events,
    with_event_hour,
)
from warehouse_models.tables import (
    BRONZE_DERIVED,
    BRONZE_INTERACTIONS,
    BRONZE_PLAYBACK,
    SESSION_IDENTITY,
    SILVER_EVENTS,
    SILVER_SESSION_HOURS,
    TableSpec,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, DataFrameWriter, SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

SILVER_SOURCES: tuple[TableSpec, ...] = (BRONZE_PLAYBACK, BRONZE_INTERACTIONS, BRONZE_DERIVED)
"""The bronze tables silver reads (the catalog goes to the dimensions, dead letters stay in bronze)."""

SESSION_SPAN = timedelta(hours=6)
"""How far around an hour the session rows of other hours fill its events (sessions crossing hour boundaries)."""

_HOUR = timedelta(hours=1)


# --- Delta helpers shared with the gold job ---------------------------------------------------------------------


def ensure_table(spark: SparkSession, settings: Settings, spec: TableSpec) -> str:
    """Create the table from its spec (:func:`batch_layer.delta_tables.create_table`) if it is missing."""
    return create_table(spark, spec, spec.path(settings.delta_root_uri))


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
    each partition gets a few files (one per ``spark_delta_write_bin_mb`` of rows) instead of one per task that held
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


REPEATED_IDS_LISTED = 100_000
"""Up to this many re-sent event ids, only their rows are ranked to keep the first copy; more: every row is."""

SMALL_IDENTITY_ROWS = 500_000
"""Up to this many (hour, session) pairs with slimmed events, the values to fill them with are broadcast."""


def repeated_ids(events: DataFrame) -> list[str] | None:
    """The event ids more than one of ``events`` carries; None when there are over :data:`REPEATED_IDS_LISTED`."""
    found = [row["event_id"] for row in duplicate_ids(events.select("event_id")).limit(REPEATED_IDS_LISTED + 1)
             .collect()]
    if len(found) > REPEATED_IDS_LISTED:
        logger.info("silver: over %d re-sent event ids; every row is ranked", REPEATED_IDS_LISTED)
        return None
    return found


def _in_hours(hours: Sequence[datetime]) -> Column:
    """Rows whose event time falls in one of the hours (contiguous hours as one range, for Delta's file skipping)."""
    from pyspark.sql import functions as F

    ranges: list[tuple[datetime, datetime]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + _HOUR)
        else:
            ranges.append((hour, hour + _HOUR))
    condition = F.lit(False)
    for low, high in ranges:
        condition = condition | ((F.col("event_timestamp") >= F.lit(low)) & (F.col("event_timestamp") < F.lit(high)))
    return condition


def _hour_list(column: str, hours: Iterable[datetime]) -> Column:
    from pyspark.sql import functions as F

    return F.col(column).isin(*[F.lit(h) for h in sorted(hours)])


def _hours_from_to(low: datetime, high: datetime) -> Column:
    """Rows whose ``event_hour`` is from ``low`` to ``high``, both included."""
    from pyspark.sql import functions as F

    return (F.col("event_hour") >= F.lit(low)) & (F.col("event_hour") <= F.lit(high))


def _differing(a: DataFrame, b: DataFrame, keys: Sequence[str], compared: Sequence[str]) -> DataFrame:
    """The keys whose ``compared`` columns differ (nulls equal) between two frames, or that only one has."""
    from pyspark.sql import functions as F

    left, right = a.alias("a"), b.alias("b")
    same = F.lit(True)
    for name in compared:
        same = same & F.col(f"a.{name}").eqNullSafe(F.col(f"b.{name}"))
    on = F.lit(True)
    for key in keys:
        on = on & (F.col(f"a.{key}") == F.col(f"b.{key}"))
    return (left.join(right, on, "full_outer").where(~same)
            .select(*(F.coalesce(F.col(f"a.{key}"), F.col(f"b.{key}")).alias(key) for key in keys)))


def reopened_hours(spark: SparkSession, parts_path: str, new_parts: DataFrame, *, hours: Sequence[datetime],
                   span: timedelta) -> set[datetime]:
    """The other hours whose silver rows change when ``new_parts`` replace the rebuilt hours' session rows.

    Only an hour with an event that lacks an identity field (``has_gaps``) can change, and only when the values
    its events are filled with (the earliest over the session rows within ``span``) are not the same as before.
    """
    from pyspark.sql import functions as F

    first, last = min(hours), max(hours)
    table = spark.read.format("delta").load(parts_path)
    old = table.where(_hours_from_to(first - 2 * span, last + 2 * span))
    gapped = old.where(_hours_from_to(first - span, last + span) & ~_hour_list("event_hour", hours) & F.col("has_gaps"))
    if not gapped.select("session_id").join(new_parts.select("session_id"), "session_id", "left_semi").take(1):
        return set()  # no other hour near these has slimmed events of their sessions (the usual case)
    new = old.where(~_hour_list("event_hour", hours)).unionByName(new_parts)
    changed = _differing(new_parts, old.where(_hour_list("event_hour", hours)), ["event_hour", "session_id"],
                         [f"{name}{suffix}" for name in SESSION_IDENTITY for suffix in ("", "_at", "_event_id")])
    candidates = (gapped.join(changed.select("session_id").distinct(), "session_id", "left_semi")
                  .select("event_hour", "session_id"))
    before = identity_for_hours(old, candidates, span=span)
    after = identity_for_hours(new, candidates, span=span)
    moved = _differing(after, before, ["event_hour", "session_id"], SESSION_IDENTITY)
    near = {from_spark_timestamp(row["event_hour"]) for row in moved.select("event_hour").distinct().collect()}
    return {h for h in near if any(abs(h - built) <= span for built in hours)}


def build_silver(spark: SparkSession, settings: Settings, *, hours: Iterable[datetime],
                 grace: timedelta = LATE_GRACE, session_span: timedelta = SESSION_SPAN) -> dict[str, int]:
    """Rebuild the given event-hour partitions of ``silver_events`` from bronze; return counts for metadata.

    The steps: the re-sent event ids of the hours (usually none: then nothing is sorted); the hours' session
    rows (``silver_session_hours``, from the events' ids, times and identity fields only); the other hours they
    re-open; then the silver rows of all those hours, their slimmed events filled from the session rows within
    ``session_span`` (a broadcast lookup of the few sessions that need it). Bronze is read for these hours only.

    Args:
        spark: a session with Delta's SQL extension.
        settings: the Delta root.
        hours: event hours to rebuild (aware; any time within the hour names it).
        grace: the late-event grace period after an hour closes.
        session_span: how far from an hour the session rows of other hours fill its events.

    Returns:
        ``hours`` rebuilt (the asked ones and the ``reopened`` ones), silver ``rows`` now in them and how many of
        those are ``late_rows``.
    """
    from pyspark.sql import functions as F

    wanted = sorted({utc_hour(h) for h in hours})
    path = ensure_table(spark, settings, SILVER_EVENTS)
    parts_path = ensure_table(spark, settings, SILVER_SESSION_HOURS)
    if not wanted:
        return {"hours": 0, "rows": 0, "late_rows": 0, "reopened": 0}

    def viewer_events(of: Sequence[datetime]) -> DataFrame:
        return valid_viewer_events(bronze_viewer_rows(spark, settings).where(_in_hours(of)))

    def first_copies(events: DataFrame, repeated: list[str] | None) -> DataFrame:
        if repeated is None:
            return deduplicate(events)
        if not repeated:
            return events
        return keep_first_copies(events, spark.createDataFrame([(i,) for i in repeated], "event_id STRING"))

    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds[name] = round(now - clock, 2)
        clock = now

    # 1. The session rows of the asked hours, from the narrow columns (de-duplicated as the silver rows will be).
    narrow = viewer_events(wanted).select("event_id", "event_timestamp", "session_id", *SESSION_IDENTITY,
                                          *KAFKA_ORDER).localCheckpoint(eager=True)
    repeated = repeated_ids(narrow)
    lap("read")
    new_parts = session_hours(first_copies(narrow, repeated)).localCheckpoint(eager=True)
    lap("sessions")
    reopened = reopened_hours(spark, parts_path, new_parts, hours=wanted, span=session_span)
    lap("reopened")
    overwrite_partitions(new_parts, SILVER_SESSION_HOURS, parts_path, values=wanted)
    lap("sessions_write")
    built = sorted(set(wanted) | reopened)
    if reopened:
        logger.info("silver: %d other hours have events filled from the changed sessions: %s", len(reopened),
                    ", ".join(h.isoformat() for h in sorted(reopened)))
        repeated = repeated_ids(viewer_events(built))

    # 2. The silver rows: slimmed events filled from the session rows of the hours around theirs.
    parts = spark.read.format("delta").load(parts_path)
    gapped = (parts if reopened else new_parts).where(_hour_list("event_hour", built) & F.col("has_gaps")).select(
        "event_hour", "session_id")
    gapped_count = gapped.count()
    around = parts.where(_hours_from_to(built[0] - session_span, built[-1] + session_span))
    identity = identity_for_hours(around, gapped, span=session_span)
    events = first_copies(viewer_events(built), repeated)
    stitched = stitch_from(events, identity, small=gapped_count <= SMALL_IDENTITY_ROWS) if gapped_count else events
    rows = conform(with_event_hour(stitched, grace=grace), SILVER_EVENTS)
    lap("plan")
    overwrite_partitions(rows, SILVER_EVENTS, path, values=built)
    lap("write")
    written = (
        spark.read.format("delta").load(path)
        .where(_hour_list("event_hour", built))
        .agg(F.count(F.lit(1)).alias("rows"), F.count_if(F.col("is_late")).alias("late_rows"))
        .collect()[0]
    )
    counts = {"hours": len(built), "rows": int(written["rows"]), "late_rows": int(written["late_rows"] or 0),
              "reopened": len(reopened)}
    lap("count")
    logger.info("silver rebuilt %s (seconds: %s)", counts, seconds)
    return counts


def hours_between(start: datetime, end: datetime) -> Sequence[datetime]:
    """Every UTC hour from the one holding ``start`` up to (not including) ``end``."""
    hour, stop = utc_hour(start), end.astimezone(timezone.utc)
    hours: list[datetime] = []
    while hour < stop:
        hours.append(hour)
        hour += _HOUR
    return hours

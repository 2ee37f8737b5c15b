"""Pure DataFrame steps from bronze rows to silver events (batch frames in, batch frames out, no I/O).

The steps, in the order :func:`silver_events` applies them::

    bronze rows -> valid_viewer_events -> deduplicate -> stitch_sessions -> with_event_hour -> conform

Stitching is two steps, so that an hour can be stitched without reading its neighbours' events:
:func:`session_hours` sums up, per event hour and session, the earliest value of each identity field the hour's
events carry (a few hundred bytes per session); :func:`identity_for_hours` picks, for an hour, the earliest of
those values over the hours around it, and :func:`stitch_from` fills the events that lack a field from it. The
silver job keeps the per-hour rows in their own table (``silver_session_hours``) and reads only those of the
neighbouring hours; :func:`stitch_sessions` does the same over one frame, with the same functions.

Bronze already holds the typed envelope columns (parsed with the shared schema), so silver keeps only the
rows the shared validator passed (``parse_error IS NULL``) of the viewer topics (playback, interactions and the
speed layer's derived ``view_end`` events), one row per ``event_id``.

A late event belongs to the hour of its event time, not of its arrival: ``is_late`` marks an event whose
Kafka timestamp is at or after the end of its event hour plus :data:`LATE_GRACE`, and
:func:`affected_event_hours` tells the job which hours newly ingested rows re-open, so it rebuilds them whole.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from batch_layer.bronze.transform import conform
from warehouse_models.events import DERIVED_TYPES, INTERACTION_TYPES, PLAYBACK_TYPES, SEARCH_TYPES
from warehouse_models.tables import SESSION_IDENTITY, SILVER_EVENTS, SILVER_SESSION_HOURS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from pyspark.sql import Column, DataFrame

logger = logging.getLogger(__name__)

LATE_GRACE = timedelta(minutes=5)
"""How long after its hour closes an event still counts as on time (a heartbeat interval and producer lag)."""

VIEWER_EVENT_TYPES: tuple[str, ...] = tuple(sorted(
    t.value for t in PLAYBACK_TYPES | INTERACTION_TYPES | SEARCH_TYPES | DERIVED_TYPES))
"""The event types silver holds: everything but the catalog."""

KAFKA_ORDER: tuple[str, ...] = ("kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset")
"""The order in which copies of one record reached Kafka: the first copy is the one kept."""

__all__ = [
    "KAFKA_ORDER",
    "LATE_GRACE",
    "SESSION_IDENTITY",
    "VIEWER_EVENT_TYPES",
    "affected_event_hours",
    "deduplicate",
    "duplicate_ids",
    "has_gaps",
    "identity_for_hours",
    "keep_first_copies",
    "rank_copies",
    "session_hours",
    "silver_events",
    "stitch_from",
    "stitch_sessions",
    "valid_viewer_events",
    "with_event_hour",
]


def valid_viewer_events(bronze: DataFrame) -> DataFrame:
    """The bronze rows that validated (``parse_error IS NULL``) and are viewer events (not catalog records)."""
    from pyspark.sql import functions as F

    return bronze.where(F.col("parse_error").isNull() & F.col("event_type").isin(*VIEWER_EVENT_TYPES))


def deduplicate(events: DataFrame) -> DataFrame:
    """One row per ``event_id``: the copy with the earliest Kafka coordinates (timestamp, topic, partition, offset).

    A client that retries, a replayed topic or a speed-layer micro-batch sent twice all give the same
    ``event_id``; keeping the first copy makes the choice independent of how often and when it was repeated.
    """
    from pyspark.sql import functions as F

    return rank_copies(events).where(F.col(COPY_RANK) == 1).drop(COPY_RANK)


COPY_RANK = "_copy"
"""The column :func:`rank_copies` adds: 1 for the copy of an event that is kept, 2, 3, ... for its repeats."""


def rank_copies(events: DataFrame) -> DataFrame:
    """Number the copies of each ``event_id`` in the order Kafka got them (:data:`COPY_RANK`, from 1)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("event_id").orderBy(*[F.col(c).asc_nulls_last() for c in KAFKA_ORDER])
    return events.withColumn(COPY_RANK, F.row_number().over(first))


def has_gaps() -> Column:
    """Per event: it belongs to a session and lacks at least one identity field (:data:`SESSION_IDENTITY`)."""
    from pyspark.sql import functions as F

    missing = F.lit(False)
    for name in SESSION_IDENTITY:
        missing = missing | F.col(name).isNull()
    return F.col("session_id").isNotNull() & missing


def _earliest(value: Column, at: Column, event_id: Column) -> Column:
    """Aggregate: the (at, event_id, value) struct of the earliest row where ``value`` is not null."""
    from pyspark.sql import functions as F

    # min over (time, id, value) structs: nulls are skipped and the order Spark reads rows in does not matter.
    return F.min(F.when(value.isNotNull(), F.struct(at.alias("at"), event_id.alias("event_id"), value.alias("value"))))


def session_hours(events: DataFrame) -> DataFrame:
    """Per event hour and session: the earliest value of each identity field (:data:`SILVER_SESSION_HOURS`).

    Args:
        events: de-duplicated viewer events (rows without a ``session_id`` are left out).
    """
    from pyspark.sql import functions as F

    firsts = {name: _earliest(F.col(name), F.col("event_timestamp"), F.col("event_id")).alias(f"_{name}")
              for name in SESSION_IDENTITY}
    grouped = (
        events.where(F.col("session_id").isNotNull())
        .groupBy(F.date_trunc("hour", F.col("event_timestamp")).alias("event_hour"), "session_id")
        .agg(*firsts.values(), F.count(F.lit(1)).alias("events"), F.bool_or(has_gaps()).alias("has_gaps"))
    )
    flat = {}
    for name in SESSION_IDENTITY:
        flat[name] = F.col(f"_{name}.value")
        flat[f"{name}_at"] = F.col(f"_{name}.at")
        flat[f"{name}_event_id"] = F.col(f"_{name}.event_id")
    return conform(grouped.withColumns(flat), SILVER_SESSION_HOURS)


def identity_for_hours(session_hours_rows: DataFrame, hours: DataFrame, *, span: timedelta | None) -> DataFrame:
    """Per (event hour, session) of ``hours``: each identity field's earliest value over the session's hours.

    Args:
        session_hours_rows: rows of :func:`session_hours` (of the hours around the asked ones).
        hours: the (``event_hour``, ``session_id``) pairs to stitch.
        span: only the session's hours within this distance of the stitched hour count (the silver job's
            reading margin); None: all of ``session_hours_rows``.

    Returns:
        ``event_hour``, ``session_id`` and one column per identity field.
    """
    from pyspark.sql import functions as F

    parts = session_hours_rows.withColumnRenamed("event_hour", "_part_hour")
    joined = hours.join(parts, "session_id")
    if span is not None:
        seconds = int(span.total_seconds())
        joined = joined.where(F.abs(F.unix_seconds(F.col("_part_hour")) - F.unix_seconds(F.col("event_hour")))
                              <= F.lit(seconds))
    firsts = [_earliest(F.col(name), F.col(f"{name}_at"), F.col(f"{name}_event_id"))["value"].alias(name)
              for name in SESSION_IDENTITY]
    return joined.groupBy("event_hour", "session_id").agg(*firsts)


def stitch_from(events: DataFrame, identity: DataFrame, *, small: bool = False) -> DataFrame:
    """Fill the missing identity fields of ``events`` from ``identity`` (:func:`identity_for_hours`).

    Args:
        events: de-duplicated viewer events.
        identity: per (``event_hour``, ``session_id``), the values to fill with.
        small: ``identity`` fits in memory: every event is looked up in a broadcast copy of it (no shuffle).
            Otherwise only the events with gaps (:func:`has_gaps`) are joined and the others pass as they are.
    """
    from pyspark.sql import functions as F

    # Fresh names on the identity side: it may come from the same frame (a self-join), so no column is shared.
    session = identity.select(F.col("event_hour").alias("_session_hour"), F.col("session_id").alias("_session_id"),
                              *(F.col(name).alias(f"_session_{name}") for name in SESSION_IDENTITY))
    on = ((F.date_trunc("hour", F.col("event_timestamp")) == F.col("_session_hour"))
          & (F.col("session_id") == F.col("_session_id")))

    def fill(rows: DataFrame, lookup: DataFrame) -> DataFrame:
        return (rows.join(lookup, on, "left")
                .withColumns({name: F.coalesce(F.col(name), F.col(f"_session_{name}")) for name in SESSION_IDENTITY})
                .drop("_session_hour", "_session_id", *(f"_session_{name}" for name in SESSION_IDENTITY)))

    if small:
        return fill(events, F.broadcast(session))
    gap = has_gaps()
    return events.where(~gap).unionByName(fill(events.where(gap), session))


def duplicate_ids(events: DataFrame) -> DataFrame:
    """The ``event_id`` values that more than one row of ``events`` carries (column ``event_id``)."""
    from pyspark.sql import functions as F

    return events.groupBy("event_id").agg(F.count(F.lit(1)).alias("_copies")).where(F.col("_copies") > 1).select(
        "event_id")


def keep_first_copies(events: DataFrame, repeated: DataFrame) -> DataFrame:
    """:func:`deduplicate` when only the ids in ``repeated`` (a small frame) can have copies: only their rows are
    ranked, every other row passes without a sort."""
    from pyspark.sql import functions as F

    ids = F.broadcast(repeated.select("event_id"))
    return events.join(ids, "event_id", "left_anti").unionByName(
        deduplicate(events.join(ids, "event_id", "left_semi")))


def stitch_sessions(events: DataFrame, *, span: timedelta | None = None) -> DataFrame:
    """Fill each session event's missing identity (:data:`SESSION_IDENTITY`) from the session's other events.

    An event keeps what it carries; a missing value comes from the session's earliest event (by event time,
    then ``event_id``) that has one, so every row of a session can be grouped by account, user, title and
    device even when a client sent a slimmed-down event. Rows without a ``session_id`` are left as they are.
    With ``span``, only the session's events within that distance of the event's hour are looked at (the
    silver job's reading margin).
    """
    from pyspark.sql import functions as F

    gapped_hours = (events.where(has_gaps())
                    .select(F.date_trunc("hour", F.col("event_timestamp")).alias("event_hour"), "session_id")
                    .distinct())
    return stitch_from(events, identity_for_hours(session_hours(events), gapped_hours, span=span))


def with_event_hour(events: DataFrame, *, grace: timedelta = LATE_GRACE) -> DataFrame:
    """Add ``event_hour`` and ``event_date`` (event time, UTC) and ``is_late`` (arrived after its hour closed)."""
    from pyspark.sql import functions as F

    hour = F.date_trunc("hour", F.col("event_timestamp"))
    closes = F.timestamp_add("SECOND", F.lit(3600 + int(grace.total_seconds())), F.col("event_hour"))
    return (
        events.withColumn("event_hour", hour)
        .withColumn("event_date", F.to_date(F.col("event_timestamp")))
        .withColumn("is_late", F.col("kafka_timestamp") >= closes)
    )


def silver_events(bronze: DataFrame, *, hours: Iterable[datetime] | None = None,
                  grace: timedelta = LATE_GRACE) -> DataFrame:
    """The silver rows of the given event hours (all hours when None) from bronze rows of the viewer topics.

    Args:
        bronze: rows of the bronze playback, interactions and derived tables (the bronze columns). To stitch a
            session that crosses an hour boundary, pass the neighbouring hours' rows too: they are read for the
            session's identity and dropped from the output.
        hours: event hours (aware UTC, on the hour) to keep.
        grace: the late-event grace period after an hour closes.
    """
    from pyspark.sql import functions as F

    rows = with_event_hour(stitch_sessions(deduplicate(valid_viewer_events(bronze))), grace=grace)
    if hours is not None:
        wanted = sorted(set(hours))
        rows = rows.where(F.col("event_hour").isin(*[F.lit(h) for h in wanted])) if wanted else rows.limit(0)
    return conform(rows, SILVER_EVENTS)


def affected_event_hours(new_rows: DataFrame, bronze: DataFrame | None = None) -> DataFrame:
    """The event hours (column ``event_hour``) whose silver partition changes because of ``new_rows``.

    Args:
        new_rows: bronze rows ingested since the last silver build (e.g. ``ingested_at`` after a point).
        bronze: all bronze rows of the viewer topics; when given, the hours of every other event of a session
            the new rows touch count too, because a new event can change the identity stitched onto them.
    """
    from pyspark.sql import functions as F

    new = valid_viewer_events(new_rows)
    hour = F.date_trunc("hour", F.col("event_timestamp")).alias("event_hour")
    own = new.select(hour)
    if bronze is None:
        return own.distinct()
    sessions = new.where(F.col("session_id").isNotNull()).select("session_id").distinct()
    siblings = valid_viewer_events(bronze).join(sessions, "session_id", "left_semi").select(hour)
    return own.union(siblings).distinct()

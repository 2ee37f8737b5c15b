"""Pure DataFrame steps from bronze rows to silver events (batch frames in, batch frames out, no I/O).

The steps, in the order :func:`silver_events` applies them::

    bronze rows -> valid_viewer_events -> deduplicate -> stitch_sessions -> with_event_hour -> conform

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
from warehouse_models.events import DERIVED_TYPES, INTERACTION_TYPES, PLAYBACK_TYPES
from warehouse_models.tables import SILVER_EVENTS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

LATE_GRACE = timedelta(minutes=5)
"""How long after its hour closes an event still counts as on time (a heartbeat interval and producer lag)."""

VIEWER_EVENT_TYPES: tuple[str, ...] = tuple(sorted(t.value for t in PLAYBACK_TYPES | INTERACTION_TYPES | DERIVED_TYPES))
"""The event types silver holds: everything but the catalog."""

SESSION_IDENTITY: tuple[str, ...] = (
    "account_id", "user_id", "content_id", "device_id", "device_type", "country", "is_live",
)
"""Who watched what where: every event of a session carries these, filled from the session's own events."""

KAFKA_ORDER: tuple[str, ...] = ("kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset")
"""The order in which copies of one record reached Kafka: the first copy is the one kept."""

__all__ = [
    "KAFKA_ORDER",
    "LATE_GRACE",
    "SESSION_IDENTITY",
    "VIEWER_EVENT_TYPES",
    "affected_event_hours",
    "deduplicate",
    "silver_events",
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
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("event_id").orderBy(*[F.col(c).asc_nulls_last() for c in KAFKA_ORDER])
    return events.withColumn("_copy", F.row_number().over(first)).where(F.col("_copy") == 1).drop("_copy")


def stitch_sessions(events: DataFrame) -> DataFrame:
    """Fill each session event's missing identity (:data:`SESSION_IDENTITY`) from the session's other events.

    An event keeps what it carries; a missing value comes from the session's earliest event (by event time,
    then ``event_id``) that has one, so every row of a session can be grouped by account, user, title and
    device even when a client sent a slimmed-down event. Rows without a ``session_id`` are left as they are.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    session = (
        Window.partitionBy("session_id").orderBy("event_timestamp", "event_id")
        .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    filled = {
        name: F.when(F.col("session_id").isNull(), F.col(name)).otherwise(
            F.coalesce(F.col(name), F.first(F.col(name), ignorenulls=True).over(session))
        )
        for name in SESSION_IDENTITY
    }
    return events.withColumns(filled)


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

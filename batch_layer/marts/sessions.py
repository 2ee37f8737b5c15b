"""The session and event frames every mart starts from, with the shared definitions of ``warehouse_models.marts``.

A session is one ``session_id`` of the fact's playback events (computed ``view_end`` rows left out: they repeat
a session's totals). Its identity (user, account, title, device type, country) is taken from its first event
that names each one, so a later event with a missing field cannot change the slice a session counts in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from warehouse_models.events import EventType
from warehouse_models.marts import UNKNOWN
from warehouse_models.tables import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

SESSION_IDENTITY: tuple[str, ...] = ("user_id", "account_id", "content_id", "device_type", "country")


def viewer_events(fact: DataFrame) -> DataFrame:
    """The fact's rows that viewers sent: everything but the computed ``view_end`` rows."""
    from pyspark.sql import functions as F

    return fact.where(F.col("event_type") != EventType.VIEW_END.value)


def heartbeat_watch_seconds() -> SparkColumn:
    """Per row: the seconds a heartbeat adds to watch time (0 on any other event), to be summed."""
    from pyspark.sql import functions as F

    heartbeat = F.col("event_type") == EventType.HEARTBEAT.value
    return F.when(heartbeat, F.coalesce(F.col("watch_seconds"), F.lit(0.0))).otherwise(F.lit(0.0))


def first_named(name: str, *, order: str = "event_timestamp") -> SparkColumn:
    """Aggregate: the value of ``name`` on the earliest row (by ``order``) where it is not null."""
    from pyspark.sql import functions as F

    value = F.col(name)
    # min over (time, value) structs: nulls are skipped, equal times fall back to the smaller value, so the
    # result does not depend on the order Spark reads the rows in.
    return F.min(F.when(value.isNotNull(), F.struct(F.col(order).alias("t"), value.alias("v"))))["v"].alias(name)


def or_unknown(name: str) -> SparkColumn:
    """A slice column with missing values reported as ``unknown``."""
    from pyspark.sql import functions as F

    return F.coalesce(F.col(name), F.lit(UNKNOWN)).alias(name)


def fact_sessions(fact: DataFrame) -> DataFrame:
    """One row per session of the fact frame.

    Columns: ``session_id``, the identity columns (:data:`SESSION_IDENTITY`), ``first_event_at``,
    ``last_event_at``, ``first_frame_at`` (null when it never started), ``first_heartbeat_at``,
    ``last_heartbeat_at`` (null without heartbeats), ``last_position_seconds`` (position of the newest event
    that carries one; the larger on equal times), ``furthest_position_seconds`` and ``session_date`` (the
    date of its first event).
    """
    from pyspark.sql import functions as F

    ts = F.col("event_timestamp")
    kind = F.col("event_type")
    position = F.col("position_seconds")
    heartbeat = kind == EventType.HEARTBEAT.value
    playback = viewer_events(fact).where(F.col("session_id").isNotNull())
    return (
        playback.groupBy("session_id")
        .agg(
            *(first_named(name) for name in SESSION_IDENTITY),
            F.min(ts).alias("first_event_at"),
            F.max(ts).alias("last_event_at"),
            F.min(F.when(kind == EventType.FIRST_FRAME.value, ts)).alias("first_frame_at"),
            F.min(F.when(heartbeat, ts)).alias("first_heartbeat_at"),
            F.max(F.when(heartbeat, ts)).alias("last_heartbeat_at"),
            F.max(F.when(position.isNotNull(), F.struct(ts.alias("t"), position.alias("v"))))["v"]
            .alias("last_position_seconds"),
            F.max(position).alias("furthest_position_seconds"),
        )
        .withColumn("session_date", F.to_date("first_event_at"))
    )


def conform(df: DataFrame, spec: TableSpec) -> DataFrame:
    """The mart's columns in declared order and types (the bronze layer's rule, applied to marts)."""
    from batch_layer.bronze.transform import conform as conform_to_spec

    return conform_to_spec(df, spec)

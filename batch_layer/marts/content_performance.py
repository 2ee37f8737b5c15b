"""``mart_content_performance``: per title and day, views, watch time, completion and the drop-off curve.

A view (a session with a first frame) counts on the date of its first frame, with the positions of the whole
session: it is complete when its last position is at least 90 % of the duration (``dim_content``'s
``duration_minutes``), and it reaches the curve's point ``p`` when its furthest position is at least ``p`` %
of the duration. The curve's points are shares of the day's views, so point 0 is 1.0 and the curve never rises.
Live channels and titles without a duration have views and watch time but no completion and no curve.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform, fact_sessions, heartbeat_watch_seconds, viewer_events
from warehouse_models.marts import COMPLETION_THRESHOLD, DROPOFF_POINTS, MART_CONTENT_PERFORMANCE, dropoff_column

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

_THRESHOLD_TENTHS = round(COMPLETION_THRESHOLD * 10)


def mart_content_performance(fact: DataFrame, dim_content: DataFrame, *,
                             per_session: DataFrame | None = None) -> DataFrame:
    """Fact rows and ``dim_content`` -> one row per (title, event date) with views or watch time."""
    from pyspark.sql import functions as F

    per_session = fact_sessions(fact) if per_session is None else per_session

    duration_s = F.col("duration_s")
    last = F.coalesce(F.col("last_position_seconds"), F.lit(0.0))
    furthest = F.coalesce(F.col("furthest_position_seconds"), F.lit(0.0))
    known = duration_s.isNotNull()
    durations = dim_content.select(
        "content_id", F.when(F.col("duration_minutes") > 0, F.col("duration_minutes")).alias("duration_minutes"))
    views = (
        per_session
        .where(F.col("first_frame_at").isNotNull() & F.col("content_id").isNotNull())
        .withColumn("event_date", F.to_date("first_frame_at"))
        .join(durations, "content_id", "left")
        .withColumn("duration_s", F.col("duration_minutes").cast("double") * 60.0)
    )
    # Compared in whole percent (position x 100 >= p x duration) so 5 % of 600 s is exactly 30 s, not
    # 30.000000000000004 as 0.05 x 600 would be.
    per_view = views.groupBy("content_id", "event_date").agg(
        F.count(F.lit(1)).alias("views"),
        F.sum(F.when(known, (last * 10 >= duration_s * _THRESHOLD_TENTHS).cast("long"))).alias("completed_views"),
        *(F.avg(F.when(known, (furthest * 100 >= duration_s * p).cast("double")))
          .alias(dropoff_column(p)) for p in DROPOFF_POINTS),
    )
    watch = (viewer_events(fact).where(F.col("content_id").isNotNull() & F.col("session_id").isNotNull())
             .groupBy("content_id", "event_date")
             .agg(F.sum(heartbeat_watch_seconds()).alias("watch_seconds")))
    out = (
        per_view.join(watch, ["content_id", "event_date"], "full")
        .join(durations, "content_id", "left")
        .withColumn("views", F.coalesce(F.col("views"), F.lit(0)))
        .withColumn("watch_seconds", F.coalesce(F.col("watch_seconds"), F.lit(0.0)))
        .withColumn("completion_rate", F.col("completed_views") / F.col("views"))
    )
    return conform(out, MART_CONTENT_PERFORMANCE)

"""``mart_user_engagement_daily``: per user and day, watch time, sessions started, events, clicks, titles."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform, fact_sessions, first_named, heartbeat_watch_seconds, viewer_events
from warehouse_models.events import EventType
from warehouse_models.marts import MART_USER_ENGAGEMENT_DAILY

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def mart_user_engagement_daily(fact: DataFrame, *, per_session: DataFrame | None = None) -> DataFrame:
    """Fact rows -> one row per (user, event date) with any event (:data:`MART_USER_ENGAGEMENT_DAILY`).

    Watch seconds, events, clicks and titles count in the date of each event; a session counts on the date
    it started. ``account_id`` is the one on the user's first event of the day.
    """
    from pyspark.sql import functions as F

    per_session = fact_sessions(fact) if per_session is None else per_session

    kind = F.col("event_type")
    daily = viewer_events(fact).groupBy("user_id", "event_date").agg(
        first_named("account_id"),
        F.sum(heartbeat_watch_seconds()).alias("watch_seconds"),
        F.count(F.lit(1)).alias("events"),
        F.count(F.when(kind == EventType.CLICK.value, F.lit(1))).alias("clicks"),
        # Titles the user played, not the ones merely shown to them (impressions also carry a content_id).
        F.countDistinct(F.when(F.col("session_id").isNotNull(), F.col("content_id"))).alias("distinct_titles"),
    )
    started = (per_session.groupBy("user_id", F.col("session_date").alias("event_date"))
               .agg(F.count(F.lit(1)).alias("sessions")))
    out = (daily.join(started, ["user_id", "event_date"], "left")
           .withColumn("sessions", F.coalesce(F.col("sessions"), F.lit(0))))
    return conform(out, MART_USER_ENGAGEMENT_DAILY)

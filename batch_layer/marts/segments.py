"""``mart_segments``: per device type x country and day, distinct users, sessions started and watch time.

Users and watch time count in the segment of each event (a user on two devices counts in both); a session
counts once, in the segment of its first event that names a device type and a country.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform, fact_sessions, heartbeat_watch_seconds, or_unknown, viewer_events
from warehouse_models.marts import MART_SEGMENTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

_KEYS = ("device_type", "country", "event_date")


def mart_segments(fact: DataFrame, *, per_session: DataFrame | None = None) -> DataFrame:
    """Fact rows -> one row per (device type, country, event date) (:data:`MART_SEGMENTS`)."""
    from pyspark.sql import functions as F

    per_session = fact_sessions(fact) if per_session is None else per_session

    daily = (viewer_events(fact)
             .select(or_unknown("device_type"), or_unknown("country"), "event_date", "user_id",
                     heartbeat_watch_seconds().alias("watch"))
             .groupBy(*_KEYS)
             .agg(F.countDistinct("user_id").alias("users"), F.sum("watch").alias("watch_seconds")))
    started = (per_session
               .select(or_unknown("device_type"), or_unknown("country"), F.col("session_date").alias("event_date"))
               .groupBy(*_KEYS).agg(F.count(F.lit(1)).alias("sessions")))
    out = (daily.join(started, list(_KEYS), "full")
           .withColumn("users", F.coalesce(F.col("users"), F.lit(0)))
           .withColumn("sessions", F.coalesce(F.col("sessions"), F.lit(0)))
           .withColumn("watch_seconds", F.coalesce(F.col("watch_seconds"), F.lit(0.0))))
    return conform(out, MART_SEGMENTS)

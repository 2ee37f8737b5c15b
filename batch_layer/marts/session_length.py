"""``mart_session_length``: how many sessions started each day fall in each length bucket.

A session's length is the time from its first to its last event (event time); buckets are in minutes,
lower bound inclusive (:data:`warehouse_models.marts.SESSION_LENGTH_BUCKETS`). Every bucket appears for
every day with sessions, zeros included, so the distribution can be plotted as it is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform, fact_sessions
from warehouse_models.marts import MART_SESSION_LENGTH, SESSION_LENGTH_BUCKETS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def mart_session_length(fact: DataFrame, *, per_session: DataFrame | None = None) -> DataFrame:
    """Fact rows -> one row per (event date, length bucket) (:data:`MART_SESSION_LENGTH`)."""
    from pyspark.sql import functions as F

    per_session = fact_sessions(fact) if per_session is None else per_session

    minutes = (F.unix_micros("last_event_at") - F.unix_micros("first_event_at")) / F.lit(60_000_000.0)
    (first_name, _, first_high), *middle, (last_name, _, _) = SESSION_LENGTH_BUCKETS
    assert first_high is not None, "only the last bucket is open-ended"
    label = F.when(minutes < first_high, F.lit(first_name))
    for name, _, high in middle:
        assert high is not None, "only the last bucket is open-ended"
        label = label.when(minutes < high, F.lit(name))
    label = label.otherwise(F.lit(last_name))
    sessions = per_session.select(F.col("session_date").alias("event_date"), label.alias("length_bucket"))
    counts = sessions.groupBy("event_date", "length_bucket").agg(F.count(F.lit(1)).alias("sessions"))
    buckets = fact.sparkSession.createDataFrame(
        list(SESSION_LENGTH_BUCKETS), "length_bucket STRING, bucket_min_minutes INT, bucket_max_minutes INT")
    days = sessions.select("event_date").distinct()
    totals = sessions.groupBy("event_date").agg(F.count(F.lit(1)).alias("total"))
    out = (
        days.crossJoin(buckets)
        .join(counts, ["event_date", "length_bucket"], "left")
        .join(totals, "event_date")
        .withColumn("sessions", F.coalesce(F.col("sessions"), F.lit(0)))
        .withColumn("share", F.col("sessions") / F.col("total"))
    )
    return conform(out, MART_SESSION_LENGTH)

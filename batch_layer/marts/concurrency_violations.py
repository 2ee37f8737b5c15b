"""``mart_concurrency_violations``: per account and day, the sessions that started over the plan's limit.

The rule is the shared one (:func:`warehouse_models.metrics.concurrency.over_limit_sessions`, the ground truth's): a
session streams from its first to its last heartbeat, both inclusive; taken in order of (first heartbeat, last
heartbeat, id), one that starts while at least ``limit`` sessions of the account stream is over the limit. The
limit is ``max_streams`` of the session user's ``dim_users`` version valid at the session's first heartbeat;
without one it is unknown and the session is never over. A session counts on the date of its first heartbeat;
give the transform the day before the reported ones too, so sessions still streaming at midnight are seen.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform, fact_sessions
from warehouse_models.marts import MART_CONCURRENCY_VIOLATIONS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def mart_concurrency_violations(fact: DataFrame, dim_users: DataFrame, *,
                                per_session: DataFrame | None = None) -> DataFrame:
    """Fact rows and ``dim_users`` -> one row per (account, event date) with a session over the limit.

    The shared rule as Spark aggregations: each session's count of earlier sessions of its account (in the order
    of first heartbeat, last heartbeat, id) still streaming when it starts — a self-join of the account's
    sessions, a few per account and day — is compared with its own limit, as
    :func:`warehouse_models.metrics.concurrency.over_limit_sessions` does per limit. The plan's ``max_streams``
    reported for a day is the limit of its first session over it.
    """
    from pyspark.sql import functions as F

    per_session = fact_sessions(fact) if per_session is None else per_session

    sessions = per_session.where(F.col("first_heartbeat_at").isNotNull() & F.col("account_id").isNotNull())
    versions = dim_users.select(F.col("user_id").alias("_user_id"), "max_streams", "valid_from", "valid_to")
    start = F.col("first_heartbeat_at")
    valid = ((F.col("user_id") == F.col("_user_id")) & (F.col("valid_from") <= start)
             & (F.col("valid_to").isNull() | (start < F.col("valid_to"))))
    rows = sessions.join(versions, valid, "left").select(
        "account_id", "session_id", F.unix_millis("first_heartbeat_at").alias("first_ms"),
        F.unix_millis("last_heartbeat_at").alias("last_ms"), F.col("max_streams").cast("int").alias("max_streams"),
        F.to_date("first_heartbeat_at").alias("event_date"))
    order = F.struct("first_ms", "last_ms", "session_id")
    earlier = rows.select(F.col("account_id").alias("_account_id"), F.col("last_ms").alias("_last_ms"),
                          order.alias("_order"))
    before_and_streaming = ((F.col("_account_id") == F.col("account_id")) & (F.col("_order") < order)
                            & (F.col("_last_ms") >= F.col("first_ms")))
    streaming = (rows.join(earlier, before_and_streaming, "left")
                 .groupBy("account_id", "session_id", "first_ms", "last_ms", "max_streams", "event_date")
                 .agg(F.count("_order").alias("streaming")))
    over = F.col("max_streams").isNotNull() & (F.col("streaming") >= F.col("max_streams"))
    first_over = F.min(F.when(over, F.struct(order.alias("order"), F.col("max_streams").alias("limit"))))
    out = (streaming.groupBy("account_id", "event_date")
           .agg(first_over["limit"].alias("max_streams"),
                F.count(F.lit(1)).alias("sessions"),
                F.count_if(over).alias("sessions_over_limit"),
                (F.max("streaming") + 1).alias("peak_streams"),
                F.sort_array(F.collect_list(F.when(over, F.col("session_id")))).alias("over_limit_session_ids"))
           .where(F.col("sessions_over_limit") > 0))
    return conform(out, MART_CONCURRENCY_VIOLATIONS)

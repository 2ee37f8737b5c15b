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
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from batch_layer.marts.sessions import conform, fact_sessions
from warehouse_models.marts import MART_CONCURRENCY_VIOLATIONS
from warehouse_models.metrics.concurrency import over_limit_sessions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

_SESSION_DDL = "account_id STRING, session_id STRING, first_ms BIGINT, last_ms BIGINT, max_streams INT, event_date DATE"
_OUTPUT = ("account_id", "max_streams", "sessions", "sessions_over_limit", "peak_streams", "over_limit_session_ids",
           "event_date")
_OUTPUT_DDL = ("account_id STRING, max_streams INT, sessions BIGINT, sessions_over_limit BIGINT, "
               "peak_streams BIGINT, over_limit_session_ids ARRAY<STRING>, event_date DATE")


@dataclass
class _Day:
    """What one account's sessions of one day add up to."""

    sessions: int = 0
    peak_streams: int = 0
    max_streams: int | None = None
    over: list[str] = field(default_factory=list)


def account_violations(sessions: pd.DataFrame) -> pd.DataFrame:
    """One account's sessions (:data:`_SESSION_DDL`) -> its days with a session over the limit (:data:`_OUTPUT`).

    A session is judged with its own limit: whether it is over depends only on how many sessions stream when
    it starts (over-limit ones included), not on the others' limits, so a plan change during the day is exact
    with one call of the shared rule per distinct limit.
    """
    ordered = sorted((int(r.first_ms), int(r.last_ms), str(r.session_id),
                      None if pd.isna(r.max_streams) else int(r.max_streams), r.event_date)
                     for r in sessions.itertuples(index=False))
    intervals = [(first, last, sid) for first, last, sid, _, _ in ordered]
    over_by_limit = {limit: over_limit_sessions(intervals, limit)
                     for limit in {limit for *_, limit, _ in ordered if limit is not None}}
    days: dict[date, _Day] = {}
    for i, (first, _, sid, limit, day) in enumerate(ordered):
        # The same count over_limit_sessions compares with the limit: earlier sessions still streaming.
        streaming = sum(1 for _, last, _ in intervals[:i] if last >= first)
        stats = days.setdefault(day, _Day())
        stats.sessions += 1
        stats.peak_streams = max(stats.peak_streams, streaming + 1)
        if limit is not None and sid in over_by_limit[limit]:
            stats.max_streams = limit if stats.max_streams is None else stats.max_streams
            stats.over.append(sid)
    account = str(sessions["account_id"].iloc[0]) if len(sessions) else None
    rows = [
        {"account_id": account, "max_streams": s.max_streams, "sessions": s.sessions,
         "sessions_over_limit": len(s.over), "peak_streams": s.peak_streams,
         "over_limit_session_ids": sorted(s.over), "event_date": day}
        for day, s in sorted(days.items()) if s.over
    ]
    return pd.DataFrame(rows, columns=list(_OUTPUT))


def mart_concurrency_violations(fact: DataFrame, dim_users: DataFrame) -> DataFrame:
    """Fact rows and ``dim_users`` -> one row per (account, event date) with a session over the limit."""
    from pyspark.sql import functions as F

    sessions = fact_sessions(fact).where(F.col("first_heartbeat_at").isNotNull() & F.col("account_id").isNotNull())
    versions = dim_users.select(F.col("user_id").alias("_user_id"), "max_streams", "valid_from", "valid_to")
    start = F.col("first_heartbeat_at")
    valid = ((F.col("user_id") == F.col("_user_id")) & (F.col("valid_from") <= start)
             & (F.col("valid_to").isNull() | (start < F.col("valid_to"))))
    rows = sessions.join(versions, valid, "left").select(
        "account_id", "session_id", F.unix_millis("first_heartbeat_at").alias("first_ms"),
        F.unix_millis("last_heartbeat_at").alias("last_ms"), F.col("max_streams").cast("int").alias("max_streams"),
        F.to_date("first_heartbeat_at").alias("event_date"))
    out = rows.groupBy("account_id").applyInPandas(account_violations, _OUTPUT_DDL)
    return conform(out, MART_CONCURRENCY_VIOLATIONS)

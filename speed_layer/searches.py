"""Recent searches per user, for live recommendations: the newest ``RECENT_SEARCHES_MAX`` queries with their time.

A ``search`` event (interactions topic) carries what the user typed. The query text is normalised (whitespace of
any kind collapsed to one space and stripped at both ends, lower-cased; a query of only whitespace is dropped),
so "Space  Opera" and "space opera" are one search; the transform is a projection and a filter.

Redis: ``recent_searches(user)`` is a sorted set query -> event time (ms) of its newest search, written by the
recent-items script (:func:`speed_layer.recent.record_newest`): ``ZADD GT`` only moves a query forward in time and
the set keeps the newest ``RECENT_SEARCHES_MAX``, so it ends the same whatever order and batches the events come
in, and a replayed batch changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from speed_layer.query import SinkContext, newest_per_title, shared_view
from speed_layer.recent import record_newest
from warehouse_models.events import EventType, TopicKind
from warehouse_models.metrics.contributions import Contributions
from warehouse_models.redis_keys import RECENT_SEARCHES_MAX, RECENT_SEARCHES_TTL_SECONDS

if TYPE_CHECKING:
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)


def _normalised() -> SparkColumn:
    """Whitespace of any kind collapsed to one space and stripped at both ends, lower-cased."""
    from pyspark.sql import functions as F

    collapsed = F.regexp_replace(F.col("search_query"), r"\s+", " ")
    return F.lower(F.regexp_replace(collapsed, r"^ | $", ""))


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    return (F.col("event_type") == EventType.SEARCH.value) & F.col("user_id").isNotNull() & \
        (F.length(_normalised()) > 0)


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    return {"user_id": F.col("user_id"), "search_query": _normalised(),
            "event_time_ms": F.unix_millis(F.col("event_timestamp"))}


CONTRIBUTIONS = Contributions(where=_where, columns=_columns)
"""One row per search: ``user_id``, ``search_query`` (normalised), ``event_time_ms`` (long)."""


def newest_searches(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Rows -> user -> query -> the newest event time (ms) among them, whatever their order."""
    return newest_per_title(rows, lambda row: int(row["event_time_ms"]), member="search_query")


def apply_searches(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    searches = newest_searches(rows)
    if not searches:
        return
    record_newest(ctx, searches, ctx.keys.recent_searches, keep=RECENT_SEARCHES_MAX, ttl=RECENT_SEARCHES_TTL_SECONDS)
    ctx.stats["users"] = len(searches)
    logger.debug("batch %d: recent searches of %d users updated", ctx.batch_id, len(searches))


QUERY = shared_view(
    name="searches",
    description="Recent searches per user (newest RECENT_SEARCHES_MAX), for live recommendations",
    topics=(TopicKind.INTERACTIONS,),
    contributions=CONTRIBUTIONS,
    apply=apply_searches,
)

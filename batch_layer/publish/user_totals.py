"""Per-user totals before W: watch seconds, events and clicks, computed with the speed engagement view's own
transform (:func:`warehouse_models.metrics.engagement.engagement_rows`) on fact rows, so batch and speed count alike.

Redis: :meth:`~warehouse_models.redis_keys.KeyLayout.batch_user_totals`, fields ``watch_seconds``, ``events``,
``clicks``; the serving layer adds :func:`warehouse_models.metrics.engagement.read_engagement` ``(since_epoch=W)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.metrics.engagement import METRICS, engagement_rows
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "user_totals"


def user_totals(fact: DataFrame, settings: Settings, *, end: datetime, start: datetime | None = None) -> DataFrame:
    """Fact rows -> one row per user with events in ``[start, end)``: ``user_id``, ``watch_seconds``, ``events``,
    ``clicks`` (longs), the sums of the speed view's 5-second windows."""
    from pyspark.sql import functions as F

    windows = engagement_rows(between(fact, "event_timestamp", start=start, end=end), settings)
    return windows.groupBy("user_id").agg(*(F.sum(m).cast("long").alias(m) for m in METRICS))


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """One hash per user row."""
    for row in rows:
        yield keys.batch_user_totals(version, row["user_id"]), {m: int(row[m]) for m in METRICS}

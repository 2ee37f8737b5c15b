"""Per-user totals before W: watch seconds, events and clicks, computed with the speed engagement view's own
transform (:func:`warehouse_models.metrics.engagement.engagement_rows`) on fact rows, so batch and speed count alike.

Redis: :meth:`~warehouse_models.redis_keys.KeyLayout.batch_user_totals`, fields ``watch_seconds``, ``events``,
``clicks`` (all time before W) and ``YYYY-MM-DD:<metric>`` for each UTC date with events among the
:data:`~warehouse_models.metrics.engagement.DAILY_DAYS` up to W's (W's date counts its events before W); the
serving layer adds the speed layer's windows from W on (:func:`~warehouse_models.metrics.engagement.engagement_totals`,
:func:`~warehouse_models.metrics.engagement.engagement_hours` for the days).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.metrics.engagement import DAILY_DAYS, METRICS, daily_field, engagement_rows
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "user_totals"


def user_totals(fact: DataFrame, settings: Settings, *, end: datetime, start: datetime | None = None,
                daily: bool = False) -> DataFrame:
    """Fact rows -> one row per user with events in ``[start, end)``: ``user_id``, ``watch_seconds``, ``events``,
    ``clicks`` (longs), the sums of the speed view's 5-second windows; with ``daily`` (the published view) also
    ``days``: UTC date (``YYYY-MM-DD``) -> the same sums of that date's windows, for the dates with events among
    the :data:`DAILY_DAYS` up to ``end``'s (null when none)."""
    from pyspark.sql import functions as F

    windows = engagement_rows(between(fact, "event_timestamp", start=start, end=end), settings)
    sums = [F.sum(m).cast("long").alias(m) for m in METRICS]
    totals = windows.groupBy("user_id").agg(*sums)
    if not daily:
        return totals
    first_day = (end - timedelta(days=DAILY_DAYS - 1)).date()
    days = (windows.where(F.to_date("window_start") >= F.lit(first_day))
            .groupBy("user_id", F.date_format("window_start", "yyyy-MM-dd").alias("day")).agg(*sums)
            .groupBy("user_id")
            .agg(F.map_from_entries(F.collect_list(F.struct("day", F.struct(*METRICS)))).alias("days")))
    return totals.join(days, "user_id", "left")


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """One hash per user row: the all-time totals and one field per day and metric."""
    for row in rows:
        fields: dict[str, int] = {m: int(row[m]) for m in METRICS}
        for day, values in sorted((row["days"] or {}).items()):
            fields.update({daily_field(day, m): int(values[m]) for m in METRICS})
        yield keys.batch_user_totals(version, row["user_id"]), fields

"""Per-title totals before W: views, watch seconds, completion and the drop-off curve, with the content-performance
mart's rules.

:func:`batch_layer.marts.content_performance.mart_content_performance` on the fact rows before W gives them per
day (a view counts on the date of its first frame, complete when its last position reaches 90 % of the
duration, and reaches the curve's point ``p`` when its furthest position reaches ``p`` % of it); this view adds the
days up: a point of the curve is the share of every view before W that reached it. ``completed_views``,
``completion_rate`` and the curve are absent for live channels and titles without a duration.

Redis: :meth:`~warehouse_models.redis_keys.KeyLayout.batch_content_totals`, fields ``views``, ``watch_seconds``,
``completed_views``, ``completion_rate`` and one ``reached_pct_NNN`` per point of
:data:`~warehouse_models.marts.DROPOFF_POINTS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from batch_layer.marts.content_performance import mart_content_performance
from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.marts import DROPOFF_POINTS, dropoff_column
from warehouse_models.redis_keys import KeyLayout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "content_totals"

FIELDS: tuple[str, ...] = ("views", "watch_seconds", "completed_views", "completion_rate",
                           *(dropoff_column(p) for p in DROPOFF_POINTS))
"""The hash fields, in the order of the computed columns."""


def content_totals(fact: DataFrame, dim_content: DataFrame, *, end: datetime) -> DataFrame:
    """Fact rows and ``dim_content`` -> one row per title with views or watch time before ``end``.

    Columns: ``content_id``, ``views`` (long), ``watch_seconds`` (double), ``completed_views`` (long, null without
    a duration), ``completion_rate`` (double, null without a duration or views), and per drop-off point
    ``reached_pct_NNN`` (double: the share of the views that reached it; null without a duration or views).
    """
    from pyspark.sql import functions as F

    daily = mart_content_performance(between(fact, "event_timestamp", end=end), dim_content)
    # A day's point is a share of that day's views: back to a count of views (exact after rounding), added up.
    reached = [F.sum(F.round(F.col(dropoff_column(p)) * F.col("views"))).alias(dropoff_column(p))
               for p in DROPOFF_POINTS]
    curve_views = F.sum(F.when(F.col(dropoff_column(0)).isNotNull(), F.col("views")))
    totals = (daily.groupBy("content_id")
              .agg(F.sum("views").cast("long").alias("views"), F.sum("watch_seconds").alias("watch_seconds"),
                   F.sum("completed_views").cast("long").alias("completed_views"), curve_views.alias("_curve_views"),
                   *reached)
              .withColumn("completion_rate", F.when(F.col("views") > 0, F.col("completed_views") / F.col("views"))))
    shares = [F.when(F.col("_curve_views") > 0, F.col(dropoff_column(p)) / F.col("_curve_views"))
              .alias(dropoff_column(p)) for p in DROPOFF_POINTS]
    return totals.select("content_id", "views", "watch_seconds", "completed_views", "completion_rate", *shares)


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """One hash per title row; a null field (no duration) is left out rather than written as a word."""
    for row in rows:
        fields = {name: row[name] for name in FIELDS if row[name] is not None}
        yield keys.batch_content_totals(version, row["content_id"]), fields

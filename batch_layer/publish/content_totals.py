"""Per-title totals before W: views, watch seconds and completion, with the content-performance mart's rules.

:func:`batch_layer.marts.content_performance.mart_content_performance` on the fact rows before W gives them per
day (a view counts on the date of its first frame, complete when its last position reaches 90 % of the
duration); this view adds the days up. ``completed_views`` and ``completion_rate`` are absent for live channels
and titles without a duration.

Redis: :meth:`~warehouse_models.redis_keys.KeyLayout.batch_content_totals`, fields ``views``, ``watch_seconds``,
``completed_views``, ``completion_rate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from batch_layer.marts.content_performance import mart_content_performance
from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.redis_keys import KeyLayout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "content_totals"

FIELDS: tuple[str, ...] = ("views", "watch_seconds", "completed_views", "completion_rate")
"""The hash fields, in the order of the computed columns."""


def content_totals(fact: DataFrame, dim_content: DataFrame, *, end: datetime) -> DataFrame:
    """Fact rows and ``dim_content`` -> one row per title with views or watch time before ``end``.

    Columns: ``content_id``, ``views`` (long), ``watch_seconds`` (double), ``completed_views`` (long, null without
    a duration), ``completion_rate`` (double, null without a duration or views).
    """
    from pyspark.sql import functions as F

    daily = mart_content_performance(between(fact, "event_timestamp", end=end), dim_content)
    return (daily.groupBy("content_id")
            .agg(F.sum("views").cast("long").alias("views"), F.sum("watch_seconds").alias("watch_seconds"),
                 F.sum("completed_views").cast("long").alias("completed_views"))
            .withColumn("completion_rate", F.when(F.col("views") > 0, F.col("completed_views") / F.col("views"))))


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """One hash per title row; a null field (no duration) is left out rather than written as a word."""
    for row in rows:
        fields = {name: row[name] for name in FIELDS if row[name] is not None}
        yield keys.batch_content_totals(version, row["content_id"]), fields

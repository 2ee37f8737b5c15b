"""Trending baselines: per title, the average distinct viewers per trending window over the day before W.

Definition: the day ``[W - 24 h, W)`` is cut into consecutive trending windows of ``speed_trending_window_seconds``
ending at W (window ``k`` is ``[W - (k+1)·w, W - k·w)``; the oldest one is cut at ``W - 24 h`` when ``w`` does not
divide a day). A viewer of a title in a window is a user with a playback event on it in a minute that starts in the
window (the speed trending view's rule, from :func:`warehouse_models.metrics.trending.trending_rows`). A title's
baseline is its distinct viewers summed over the windows divided by the number of windows (``ceil(24 h / w)``),
windows without viewers included: what the live trending count of a title is on an ordinary window of the last day.

Redis: :meth:`~warehouse_models.redis_keys.KeyLayout.batch_trending_baselines` per content kind, content id ->
baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.metrics.trending import trending_rows
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "trending_baselines"

BASELINE_SPAN = timedelta(days=1)
"""How far before W the baseline looks."""


def window_count(window_seconds: int, span: timedelta = BASELINE_SPAN) -> int:
    """Trending windows the span is cut into (the oldest may be partial)."""
    return math.ceil(span.total_seconds() / window_seconds)


def trending_baselines(fact: DataFrame, settings: Settings, *, end: datetime) -> DataFrame:
    """Fact rows -> ``content_kind``, ``content_id``, ``baseline_viewers`` (double) for every title with viewers
    in the day before ``end``."""
    from pyspark.sql import functions as F

    window = settings.speed_trending_window_seconds
    minutes = trending_rows(between(fact, "event_timestamp", start=end - BASELINE_SPAN, end=end), settings)
    end_s = int(end.timestamp())
    index = F.floor((F.lit(end_s - 1) - F.unix_seconds("window_start")) / F.lit(window)).alias("window_index")
    viewers = minutes.select("content_kind", "content_id", index, F.explode("viewers").alias("user_id")).distinct()
    return (viewers.groupBy("content_kind", "content_id")
            .agg((F.count(F.lit(1)) / F.lit(float(window_count(window)))).alias("baseline_viewers")))


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """One field per title row in its kind's hash."""
    for row in rows:
        yield (keys.batch_trending_baselines(version, row["content_kind"]),
               {row["content_id"]: float(row["baseline_viewers"])})

"""Click-through per rail and button (and title) before W, computed with the speed CTR view's own transform.

:func:`warehouse_models.metrics.ctr.ctr_rows` on the fact rows before W, its minute windows added up per rail,
button and title. Redis: :meth:`~warehouse_models.redis_keys.KeyLayout.batch_ctr`, one hash per rail/button with the
speed buckets' fields (``<content id>:impressions``, ``<content id>:clicks``;
:data:`warehouse_models.metrics.ctr.NO_CONTENT` for a click that names no title), so the serving layer adds batch
and speed field by field."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.metrics.ctr import COUNTS, NO_CONTENT, ctr_rows
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "ctr"


def ctr_totals(fact: DataFrame, settings: Settings, *, end: datetime, start: datetime | None = None) -> DataFrame:
    """Fact rows -> impressions and clicks per (rail_id, button_id, content_id) in ``[start, end)``."""
    from pyspark.sql import functions as F

    windows = ctr_rows(between(fact, "event_timestamp", start=start, end=end), settings)
    return (windows.where(F.col("rail_id").isNotNull() & F.col("button_id").isNotNull())
            .groupBy("rail_id", "button_id", "content_id")
            .agg(*(F.sum(c).cast("long").alias(c) for c in COUNTS)))


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """One entry per (rail, button, title) row: the title's two fields in its rail/button hash."""
    for row in rows:
        content = row["content_id"] if row["content_id"] is not None else NO_CONTENT
        yield (keys.batch_ctr(version, row["rail_id"], row["button_id"]),
               {f"{content}:{count}": int(row[count]) for count in COUNTS})

"""QoE sums per title, device type and country over every minute before W: the speed QoE buckets' own sums.

:func:`warehouse_models.metrics.qoe.qoe_rows` runs on the whole fact frame (so a session that ends after W is judged
as the stream judges it, in the bucket of its end) and only its minutes before W are added up. Redis:
:meth:`~warehouse_models.redis_keys.KeyLayout.batch_qoe` with the fields of
:data:`warehouse_models.metrics.qoe.QOE_FIELDS`; the serving layer adds
:func:`warehouse_models.metrics.qoe.read_qoe` ``(since=W)`` with :func:`warehouse_models.metrics.qoe.merge_sums` and
turns the sums into ratios with :func:`warehouse_models.metrics.qoe.qoe_metrics`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from batch_layer.marts.qoe_hourly import qoe_events
from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.metrics.qoe import QOE_FIELDS, SLICE_COLUMNS, qoe_rows
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "qoe"


def qoe_minutes(fact: DataFrame, settings: Settings) -> DataFrame:
    """The speed layer's QoE minute buckets computed from fact rows (sessions judged as the stream would)."""
    return qoe_rows(qoe_events(fact), settings)


def qoe_totals(minutes: DataFrame, *, end: datetime, start: datetime | None = None) -> DataFrame:
    """QoE minute buckets (:func:`qoe_minutes`) -> sums per slice over the minutes in ``[start, end)``."""
    from pyspark.sql import functions as F

    return (between(minutes, "window_start", start=start, end=end).groupBy(*SLICE_COLUMNS)
            .agg(*(F.sum(name).cast("long").alias(name) for name in QOE_FIELDS)))


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """One hash per slice row."""
    for row in rows:
        key = keys.batch_qoe(version, row["content_id"], row["device_type"], row["country"])
        yield key, {name: int(row[name]) for name in QOE_FIELDS}

"""Click-through on rails: impressions and clicks per rail, button and title in 1-minute event-time windows (the
definition).

The speed layer adds each window's counts to one hash per (rail, button, minute) (:mod:`speed_layer.ctr`,
:meth:`~warehouse_models.redis_keys.KeyLayout.ctr_bucket`, fields ``<content id>:impressions`` and
``<content id>:clicks``); :func:`read_ctr` sums them back; the batch layer publishes the same counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from warehouse_models.events import MAX_CLOCK_SKEW, EventType
from warehouse_models.metrics.contributions import Contributions, reduce_frame, window_start
from warehouse_models.redis_io import live_hour_starts, text, window_buckets
from warehouse_models.redis_keys import (
    HOUR_SECONDS,
    SPEED_BUCKET_SECONDS,
    SPEED_BUCKET_TTL_SECONDS,
    KeyLayout,
    bucket_start,
)
from warehouse_models.redis_plan import Command, Plan, run
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn


NO_CONTENT = "-"
"""Field prefix of a click that names no title (``content_id`` is optional on clicks); no content id starts so."""

COUNTS: tuple[str, ...] = ("impressions", "clicks")


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    return F.col("event_type").isin(EventType.IMPRESSION.value, EventType.CLICK.value)


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    return {
        "rail_id": F.col("rail_id"),
        "button_id": F.col("button_id"),
        "content_id": F.col("content_id"),
        # One window per speed bucket, so a window's values are exactly one bucket's fields.
        "start": window_start(SPEED_BUCKET_SECONDS),
        "impressions": F.when(kind == EventType.IMPRESSION.value, F.lit(1)).otherwise(F.lit(0)).cast("long"),
        "clicks": F.when(kind == EventType.CLICK.value, F.lit(1)).otherwise(F.lit(0)).cast("long"),
    }


CONTRIBUTIONS = Contributions(where=_where, columns=_columns, keys=("rail_id", "button_id", "content_id", "start"),
                              sums=COUNTS)
"""Per impression or click: its (rail, button, content, minute) and what it adds to the two counts."""


def ctr_rows(events: DataFrame, settings: Settings) -> DataFrame:
    """Valid events (a batch frame) -> impressions and clicks per (rail, button, content, 1-minute window).

    Columns: ``rail_id``, ``button_id``, ``content_id`` (null for a click without one), ``window_start`` (UTC
    timestamp), ``impressions``, ``clicks`` (longs): :data:`CONTRIBUTIONS` reduced by Spark.
    """
    from pyspark.sql import functions as F

    return reduce_frame(events, CONTRIBUTIONS).select(
        "rail_id", "button_id", "content_id", F.timestamp_seconds("start").alias("window_start"), *COUNTS)


def sum_counts(hashes: Iterable[Mapping[Any, Any]]) -> dict[str, int]:
    """Impressions and clicks summed over every title field of the given bucket hashes."""
    totals = dict.fromkeys(COUNTS, 0)
    for fields in hashes:
        for field, value in fields.items():
            # Content ids may hold ':'; the count's name is what follows the last one.
            metric = text(field).rpartition(":")[2]
            if metric in totals:
                totals[metric] += int(value)
    return totals


def split_fields(fields: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """A CTR hash's fields -> title -> {impressions, clicks} (titles may hold ':'; the count follows the last)."""
    out: dict[str, dict[str, int]] = {}
    for field, value in fields.items():
        content, _, count = field.rpartition(":")
        if count in COUNTS:
            out.setdefault(content, dict.fromkeys(COUNTS, 0))[count] = int(value)
    return out


def click_rate(clicks: int, impressions: int) -> float:
    return clicks / impressions if impressions else 0.0


def live_ctr_hours(keys: KeyLayout, rail_id: str, button_id: str, *, now_epoch: float | None = None
                   ) -> Plan[dict[int, dict[Any, Any]]]:
    """Every hourly aggregate of a rail and button the speed layer may still hold (from
    :data:`SPEED_BUCKET_TTL_SECONDS` back to the clock skew ahead), in one round: hour start -> its fields. A reader
    can fetch them beside the batch part, before it knows W, and take the hours from W with
    :func:`counts_from_hours`."""
    hours = live_hour_starts(time.time() if now_epoch is None else now_epoch)
    replies = yield [Command("HGETALL", keys.ctr_hour(rail_id, button_id, hour)) for hour in hours]
    return {hour: fields for hour, fields in zip(hours, replies, strict=True) if fields}


def counts_from_hours(hours: Mapping[int, Mapping[Any, Any]], *, since_epoch: float
                      ) -> dict[str, int | float] | None:
    """Impressions, clicks and rate from ``since_epoch`` out of the hourly aggregates (hour start -> fields, as
    :func:`live_ctr_hours` returns); None when ``since_epoch`` is inside an hour (the minute buckets are needed:
    :func:`ctr_counts`)."""
    if since_epoch % HOUR_SECONDS:
        return None
    totals = sum_counts([fields for hour, fields in hours.items() if hour >= since_epoch])
    return {**totals, "rate": click_rate(totals["clicks"], totals["impressions"])}


def ctr_counts(keys: KeyLayout, rail_id: str, button_id: str, *, since_epoch: float,
               now_epoch: float | None = None, until_epoch: float | None = None) -> Plan[dict[str, int | float]]:
    """Impressions, clicks and their rate for one rail and button over the minute buckets at or after ``since_epoch``.

    Reads the buckets from ``since_epoch`` (at most :data:`SPEED_BUCKET_TTL_SECONDS` back, older ones have
    expired) to ``now_epoch`` plus the clock skew the envelope allows, in one pipeline.

    Args:
        since_epoch: the batch layer's watermark W (epoch seconds).
        now_epoch: the reader's clock (epoch seconds); defaults to the wall clock. A replayed day passes its own.
        until_epoch: only the buckets that end by this (e.g. the end of an hour being reconciled); None for
            every bucket up to the clock.

    Returns:
        ``{"impressions": int, "clicks": int, "rate": float}`` (rate 0.0 without impressions).
    """
    now = time.time() if now_epoch is None else now_epoch
    if until_epoch is None and since_epoch % HOUR_SECONDS == 0:
        # From an hour boundary (the batch watermark W always is one): the hourly aggregates, a few keys.
        hours = yield from live_ctr_hours(keys, rail_id, button_id, now_epoch=now)
        found = counts_from_hours(hours, since_epoch=since_epoch)
        assert found is not None
        return found
    first = max(since_epoch, now - SPEED_BUCKET_TTL_SECONDS)
    end = bucket_start(now + MAX_CLOCK_SKEW.total_seconds()) + SPEED_BUCKET_SECONDS
    if until_epoch is not None:
        end = min(end, int(until_epoch))
    replies = yield [Command("HGETALL", keys.ctr_bucket(rail_id, button_id, bucket))
                     for bucket in window_buckets(first, end)]
    totals = sum_counts(replies)
    return {**totals, "rate": click_rate(totals["clicks"], totals["impressions"])}


def read_ctr(client: redis.Redis, keys: KeyLayout, rail_id: str, button_id: str, *, since_epoch: float,
             now_epoch: float | None = None, until_epoch: float | None = None) -> dict[str, int | float]:
    """:func:`ctr_counts` with a blocking client."""
    return run(client, ctr_counts(keys, rail_id, button_id, since_epoch=since_epoch, now_epoch=now_epoch,
                                  until_epoch=until_epoch))



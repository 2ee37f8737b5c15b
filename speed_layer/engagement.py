"""Engagement per user in 5-second event-time windows: watch seconds, events and clicks.

Watch seconds follow the simulator's ground truth: one heartbeat interval (10 s) per ``heartbeat`` whose
``player_state`` is ``playing``. ``events`` counts every playback and interaction event of the user in the
window, ``clicks`` the ``click`` events among them.

Redis: each window is a group of fields in the user's minute bucket
(:meth:`~warehouse_models.redis_keys.KeyLayout.user_engagement_bucket`), ``<window start>:watch_seconds``,
``...:events`` and ``...:clicks``. Each micro-batch adds its own counts of the windows it touched (a late event
adds to its window later), in one transaction with the batch id, so a replayed micro-batch adds nothing.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from speed_layer.query import SinkContext, ViewQuery, batch_writer, write_increments
from speed_layer.redis_io import text
from warehouse_models.events import (
    HEARTBEAT_INTERVAL_SECONDS,
    INTERACTION_TYPES,
    MAX_CLOCK_SKEW,
    PLAYBACK_TYPES,
    EventType,
    TopicKind,
)
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS, SPEED_BUCKET_TTL_SECONDS, KeyLayout, bucket_start
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 5
"""Width of the tumbling engagement windows (several fit in one speed bucket)."""

METRICS: tuple[str, ...] = ("watch_seconds", "events", "clicks")
"""The window values, in output order; also the hash field suffixes."""


def engagement_rows(events: DataFrame, settings: Settings) -> DataFrame:
    """Valid events -> one row per (user, 5-second window): watch_seconds, events, clicks.

    Columns: ``user_id``, ``window_start``, ``window_end`` (UTC timestamps), ``watch_seconds``, ``events``,
    ``clicks`` (longs). Works on streaming and batch frames (the watermark is a no-op on a batch frame).
    """
    from pyspark.sql import functions as F

    types = sorted(t.value for t in PLAYBACK_TYPES | INTERACTION_TYPES)
    playing = (F.col("event_type") == EventType.HEARTBEAT.value) & (F.col("player_state") == "playing")
    return (
        events.where(F.col("event_type").isin(types) & F.col("user_id").isNotNull())
        .withWatermark("event_timestamp", f"{settings.speed_allowed_lateness_seconds} seconds")
        .groupBy(F.col("user_id"), F.window("event_timestamp", f"{WINDOW_SECONDS} seconds").alias("window"))
        .agg(
            F.sum(F.when(playing, F.lit(HEARTBEAT_INTERVAL_SECONDS)).otherwise(F.lit(0))).cast("long")
            .alias("watch_seconds"),
            F.count(F.lit(1)).alias("events"),
            F.count(F.when(F.col("event_type") == EventType.CLICK.value, F.lit(1))).alias("clicks"),
        )
        .select(
            "user_id",
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            *METRICS,
        )
    )


def engagement_collected(batch: DataFrame) -> DataFrame:
    """The columns of a batch's engagement rows that go to the driver."""
    from pyspark.sql import functions as F

    return batch.select("user_id", F.col("window_start").cast("long").alias("start"), *METRICS)


def apply_engagement(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Add the batch's counts of each window to the user's minute bucket, once per micro-batch."""
    mappings: dict[str, dict[str, int]] = {}
    for row in rows:
        key = ctx.keys.user_engagement_bucket(row["user_id"], bucket_start(row["start"]))
        fields = mappings.setdefault(key, {})
        for metric in METRICS:
            fields[f"{row['start']}:{metric}"] = int(row[metric])
    if mappings and not write_increments(ctx, mappings, ttl_seconds=SPEED_BUCKET_TTL_SECONDS):
        logger.info("engagement batch %d was written before: skipped", ctx.batch_id)
        return
    ctx.stats["windows_written"] = len(rows)
    ctx.stats["buckets_written"] = len(mappings)
    logger.debug("engagement batch %d: %d windows in %d buckets", ctx.batch_id, len(rows), len(mappings))


def read_engagement(client: redis.Redis, keys: KeyLayout, user_id: str, *, since_epoch: float | None = None,
                    now_epoch: float | None = None, until_epoch: float | None = None) -> dict[str, int]:
    """A user's totals over the speed windows that start at or after ``since_epoch`` (and before ``until_epoch``).

    Reads the minute buckets from ``since_epoch`` (at most :data:`SPEED_BUCKET_TTL_SECONDS` back, older buckets
    have expired) to ``now_epoch`` plus the clock skew the envelope allows, in one pipeline.

    Args:
        since_epoch: the batch layer's watermark W (epoch seconds); None for every live bucket.
        now_epoch: the reader's clock (epoch seconds); defaults to the wall clock. A replayed day passes its own.
        until_epoch: only windows that start before this (e.g. the end of an hour being reconciled); None for
            every window up to the clock.

    Returns:
        ``{"watch_seconds", "events", "clicks"}`` as ints (zeros when nothing was recorded).
    """
    now = time.time() if now_epoch is None else now_epoch
    oldest = now - SPEED_BUCKET_TTL_SECONDS
    first = bucket_start(oldest if since_epoch is None else max(since_epoch, oldest))
    last = bucket_start(now + MAX_CLOCK_SKEW.total_seconds())
    if until_epoch is not None:
        last = min(last, bucket_start(until_epoch - 1))
    buckets = range(first, last + SPEED_BUCKET_SECONDS, SPEED_BUCKET_SECONDS)
    pipe = client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hgetall(keys.user_engagement_bucket(user_id, bucket))
    totals = dict.fromkeys(METRICS, 0)
    for fields in pipe.execute():
        for field, value in fields.items():
            start, _, metric = text(field).partition(":")
            # The bucket W falls in may hold windows that start before W: those belong to the batch view.
            if metric in totals and (since_epoch is None or int(start) >= since_epoch) \
                    and (until_epoch is None or int(start) < until_epoch):
                totals[metric] += int(value)
    return totals


write_engagement = batch_writer(apply_engagement, engagement_collected)
"""The engagement writer of one batch frame (its rows collected, then :func:`apply_engagement`)."""


QUERY = ViewQuery(
    name="engagement",
    description="Watch seconds, events and clicks per user in 5-second event-time windows.",
    topics=(TopicKind.PLAYBACK, TopicKind.INTERACTIONS),
    transform=engagement_rows,
    write=write_engagement,
    collected=engagement_collected,
    apply=apply_engagement,
    late_cut=True,
)

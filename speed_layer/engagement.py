"""Engagement per user in 5-second event-time windows: watch seconds, events and clicks.

Watch seconds follow the simulator's ground truth: one heartbeat interval (10 s) per ``heartbeat`` whose
``player_state`` is ``playing``. ``events`` counts every playback and interaction event of the user in the
window, ``clicks`` the ``click`` events among them.

Redis: each window is a group of fields in the user's minute bucket
(:meth:`~warehouse_models.redis_keys.KeyLayout.user_engagement_bucket`), ``<window start>:watch_seconds``,
``...:events`` and ``...:clicks``; and the same counts per hour of window starts
(:meth:`~warehouse_models.redis_keys.KeyLayout.user_engagement_hour`), so a reader from the batch watermark adds a
few hours, not every minute; the hourly hash also counts the events of each of its minutes
(:func:`~warehouse_models.metrics.engagement.minute_field`), so a reader of the last minutes reads only the minute
buckets that exist. Each micro-batch adds its own counts of the windows it touched (a late event adds to
its window later), in one script call with the batch id, so a replayed micro-batch adds nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from speed_layer.query import SinkContext, shared_view, write_increments
from warehouse_models.events import (
    TopicKind,
)
from warehouse_models.metrics.engagement import CONTRIBUTIONS, METRICS, minute_field
from warehouse_models.redis_keys import HOUR_SECONDS, SPEED_BUCKET_TTL_SECONDS, bucket_start

logger = logging.getLogger(__name__)


def apply_engagement(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Add the batch's counts of each window to the user's minute bucket, once per micro-batch."""
    mappings: dict[str, dict[str, int]] = {}
    hours: dict[str, dict[str, int]] = {}
    for row in rows:
        minute = bucket_start(row["start"])
        fields = mappings.setdefault(ctx.keys.user_engagement_bucket(row["user_id"], minute), {})
        hourly = hours.setdefault(ctx.keys.user_engagement_hour(row["user_id"], bucket_start(row["start"],
                                                                                            HOUR_SECONDS)), {})
        for metric in METRICS:
            fields[f"{row['start']}:{metric}"] = int(row[metric])
            hourly[metric] = hourly.get(metric, 0) + int(row[metric])
        # The hour's index of its minutes: a reader of the last minutes reads only the buckets that exist.
        index = minute_field(minute)
        hourly[index] = hourly.get(index, 0) + int(row["events"])
    if mappings and not write_increments(ctx, {**mappings, **hours}, ttl_seconds=SPEED_BUCKET_TTL_SECONDS):
        logger.info("engagement batch %d was written before: skipped", ctx.batch_id)
        return
    ctx.stats["windows_written"] = len(rows)
    ctx.stats["buckets_written"] = len(mappings)
    logger.debug("engagement batch %d: %d windows in %d buckets", ctx.batch_id, len(rows), len(mappings))


QUERY = shared_view(
    name="engagement",
    description="Watch seconds, events and clicks per user in 5-second event-time windows.",
    topics=(TopicKind.PLAYBACK, TopicKind.INTERACTIONS),
    contributions=CONTRIBUTIONS,
    apply=apply_engagement,
    late_cut=True,
)

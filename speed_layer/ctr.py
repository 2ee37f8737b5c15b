"""Click-through on rails: impressions and clicks per rail, button and title in 1-minute event-time windows.

Redis: one hash per (rail, button, minute) (:meth:`~warehouse_models.redis_keys.KeyLayout.ctr_bucket`) with the
fields ``<content id>:impressions`` and ``<content id>:clicks``; each micro-batch adds its own counts of the windows
it touched with the batch id (one script call, :func:`~speed_layer.query.write_increments`), so a replayed
micro-batch adds nothing.
After the buckets, the writer recomputes the rolling rate of every (rail, button) the batch touched over the
trending window (:meth:`~warehouse_models.redis_keys.KeyLayout.ctr_rate`) from the buckets alone, so it too is
the same after a replay.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from speed_layer.query import SinkContext, shared_view, write_increments
from warehouse_models.events import TopicKind
from warehouse_models.metrics.ctr import CONTRIBUTIONS, COUNTS, NO_CONTENT, click_rate, sum_counts
from warehouse_models.redis_io import text, window_buckets
from warehouse_models.redis_keys import HOUR_SECONDS, SPEED_BUCKET_SECONDS, SPEED_BUCKET_TTL_SECONDS, bucket_start

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

logger = logging.getLogger(__name__)


def apply_ctr(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Add the batch's counts to their buckets, then recompute the rolling rate of each (rail, button) touched.

    Four round trips whatever the batch size: the fenced bucket increments (one script call with the batch id,
    so a replayed batch adds nothing), the stored rate windows, the bucket reads of the rate windows, the rate
    writes (whole values, so a replay writes the same). The rate window ends at the end of the newest minute in
    the batch, or later if a previous batch recorded a later one: a batch of late events never moves the rate
    back in time.
    """
    ctx.stats["windows_written"] = len(rows)
    if not rows:
        return
    buckets: dict[str, dict[str, int]] = {}
    for row in rows:
        fields = buckets.setdefault(ctx.keys.ctr_bucket(row["rail_id"], row["button_id"], row["start"]), {})
        hourly = buckets.setdefault(ctx.keys.ctr_hour(row["rail_id"], row["button_id"],
                                                      bucket_start(row["start"], HOUR_SECONDS)), {})
        content = row["content_id"] if row["content_id"] is not None else NO_CONTENT
        for count in COUNTS:
            fields[f"{content}:{count}"] = int(row[count])
            hourly[f"{content}:{count}"] = hourly.get(f"{content}:{count}", 0) + int(row[count])
    pairs = sorted({(row["rail_id"], row["button_id"]) for row in rows})
    newest_end = max(row["start"] for row in rows) + SPEED_BUCKET_SECONDS

    if not write_increments(ctx, buckets, ttl_seconds=SPEED_BUCKET_TTL_SECONDS):
        logger.info("ctr batch %d was written before: only the rates are recomputed", ctx.batch_id)
    pipe = ctx.client.pipeline(transaction=False)
    for rail, button in pairs:
        pipe.hget(ctx.keys.ctr_rate(rail, button), "window_end")
    recorded = pipe.execute()[-len(pairs):]

    window = ctx.settings.speed_trending_window_seconds
    ends = [max(newest_end, int(text(r))) if r is not None else newest_end for r in recorded]
    spans = [window_buckets(end - window, end) for end in ends]
    pipe = ctx.client.pipeline(transaction=False)
    for (rail, button), span in zip(pairs, spans, strict=True):
        for bucket in span:
            pipe.hgetall(ctx.keys.ctr_bucket(rail, button, bucket))
    hashes = pipe.execute()

    pipe = ctx.client.pipeline(transaction=False)
    offset = 0
    for (rail, button), span, end in zip(pairs, spans, ends, strict=True):
        totals = sum_counts(hashes[offset:offset + len(span)])
        offset += len(span)
        key = ctx.keys.ctr_rate(rail, button)
        impressions, clicks = totals["impressions"], totals["clicks"]
        rate: dict[FieldT, EncodableT] = {"impressions": impressions, "clicks": clicks,
                                          "rate": click_rate(clicks, impressions), "window_start": end - window,
                                          "window_end": end}
        pipe.hset(key, mapping=rate)
        pipe.expire(key, SPEED_BUCKET_TTL_SECONDS)
    pipe.execute()
    ctx.stats["rates_written"] = len(pairs)
    logger.debug("ctr batch %d: %d windows, %d rates", ctx.batch_id, len(rows), len(pairs))


QUERY = shared_view(
    name="ctr",
    description="Impressions and clicks per rail, button and title in 1-minute windows, and each rail button's "
                "rolling click-through rate.",
    topics=(TopicKind.INTERACTIONS,),
    contributions=CONTRIBUTIONS,
    apply=apply_ctr,
    late_cut=True,
)

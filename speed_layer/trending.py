"""Trending titles, live and VOD apart: distinct active viewers over a sliding event-time window.

Spark cannot count distinct values exactly in a streaming aggregation, so the transform emits, per title and
1-minute window, the set of users active on it (any playback event), and Redis does the distinct count: the
writer adds each minute's users to a set (SADD, so a replay changes nothing), then recomputes the newest
sliding window of each content kind the batch touched by counting the union of its minute sets, and swaps in
the ranking (:meth:`~warehouse_models.redis_keys.KeyLayout.trending`) with its window in one transaction.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from speed_layer.query import SinkContext, shared_view
from warehouse_models.events import TopicKind
from warehouse_models.metrics.trending import CONTRIBUTIONS, KINDS
from warehouse_models.redis_io import text, window_buckets
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS, TRENDING_TTL_SECONDS, ContentKind

logger = logging.getLogger(__name__)


# The size of a union of sets, counted where the sets are instead of shipping every member to the writer.
_UNION_SIZE_LUA = "return #redis.call('SUNION', unpack(KEYS))"


def apply_trending(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """SADD each minute's viewers, then recompute and swap in the newest trending window of each kind touched.

    Four round trips whatever the batch size: the set writes (with the stored window ends), the titles of the
    window's minutes, the union sizes, and the swap. The window ends at the end of the newest minute in the
    batch (rounded up to the slide), or later if a previous batch recorded a later end: a batch of late events
    never moves the ranking back in time.
    """
    rows = [row for row in rows if row["viewers"]]
    ctx.stats["minute_sets_written"] = len(rows)
    if not rows:
        return
    settings = ctx.settings
    window = settings.speed_trending_window_seconds
    # A minute set must outlive every window it belongs to, also when the window is configured longer.
    set_ttl = max(TRENDING_TTL_SECONDS, window + settings.speed_allowed_lateness_seconds + SPEED_BUCKET_SECONDS)
    kinds = [k for k in KINDS if any(row["content_kind"] == k for row in rows)]

    pipe = ctx.client.pipeline(transaction=False)
    for row in rows:
        kind, content, minute = row["content_kind"], row["content_id"], row["start"]
        viewers_key = ctx.keys.trending_viewers(kind, content, minute)
        titles_key = ctx.keys.trending_titles(kind, minute)
        pipe.sadd(viewers_key, *row["viewers"])
        pipe.expire(viewers_key, set_ttl)
        pipe.sadd(titles_key, content)
        pipe.expire(titles_key, set_ttl)
    for kind in kinds:
        pipe.hget(ctx.keys.trending_window(kind), "end")
    recorded = pipe.execute()[-len(kinds):]

    slide = settings.speed_trending_slide_seconds
    newest_end = max(row["start"] for row in rows) + SPEED_BUCKET_SECONDS
    batch_end = math.ceil(newest_end / slide) * slide
    ends = {k: max(batch_end, int(text(r))) if r is not None else batch_end
            for k, r in zip(kinds, recorded, strict=True)}
    minutes = {k: window_buckets(ends[k] - window, ends[k]) for k in kinds}

    pipe = ctx.client.pipeline(transaction=False)
    for kind in kinds:
        for minute in minutes[kind]:
            pipe.smembers(ctx.keys.trending_titles(kind, minute))
    member_sets = iter(pipe.execute())
    titles: dict[ContentKind, list[str]] = {}
    for kind in kinds:
        found: set[str] = set()
        for _minute in minutes[kind]:
            found.update(text(content) for content in next(member_sets))
        titles[kind] = sorted(found)

    union_size = ctx.client.register_script(_UNION_SIZE_LUA)
    pipe = ctx.client.pipeline(transaction=False)
    for kind in kinds:
        for content in titles[kind]:
            union_size(keys=[ctx.keys.trending_viewers(kind, content, m) for m in minutes[kind]], client=pipe)
    counts = iter(pipe.execute())

    computed_at = round(time.time(), 3)
    # One transaction per batch: a reader sees the old ranking and window or the new ones, never a mix.
    swap = ctx.client.pipeline(transaction=True)
    for kind in kinds:
        ranking = {content: int(next(counts)) for content in titles[kind]}
        ranking = {content: n for content, n in ranking.items() if n > 0}
        key, window_key = ctx.keys.trending(kind), ctx.keys.trending_window(kind)
        swap.delete(key)
        if ranking:
            swap.zadd(key, ranking)
            swap.expire(key, TRENDING_TTL_SECONDS)
        swap.hset(window_key, mapping={"start": ends[kind] - window, "end": ends[kind], "computed_at": computed_at})
        swap.expire(window_key, TRENDING_TTL_SECONDS)
    swap.execute()
    ctx.stats["trending_titles"] = sum(len(titles[k]) for k in kinds)
    logger.debug("trending batch %d: %d minute sets, windows %s", ctx.batch_id, len(rows), ends)


QUERY = shared_view(
    name="trending",
    description="Distinct active viewers per title over a sliding window, live and VOD apart.",
    topics=(TopicKind.PLAYBACK,),
    contributions=CONTRIBUTIONS,
    apply=apply_trending,
    late_cut=True,
)

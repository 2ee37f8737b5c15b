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
from warehouse_models.redis_io import ClientScript, text, window_buckets
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS, TRENDING_TTL_SECONDS, ContentKind

logger = logging.getLogger(__name__)


# The sizes of unions of sets, counted where the sets are instead of shipping every member to the writer.
# KEYS: ARGV[1] sets per union, union after union. Returns each union's size.
_UNION_SIZES_LUA = """
local per, sizes = tonumber(ARGV[1]), {}
for first = 1, #KEYS, per do
  sizes[#sizes + 1] = #redis.call('SUNION', unpack(KEYS, first, first + per - 1))
end
return sizes
"""

_union_sizes_script = ClientScript(_UNION_SIZES_LUA)

# KEYS: per minute set, its viewers set and its minute's titles set. ARGV: ttl, then per minute set: content id, n,
# n viewers.
_ADD_VIEWERS_LUA = """
local i = 2
for k = 1, #KEYS, 2 do
  local n = tonumber(ARGV[i + 1])
  -- In slices: unpack puts every value on Lua's stack, which holds about 8,000.
  for first = i + 2, i + 1 + n, 1000 do
    redis.call('SADD', KEYS[k], unpack(ARGV, first, math.min(first + 999, i + 1 + n)))
  end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
  redis.call('SADD', KEYS[k + 1], ARGV[i])
  redis.call('EXPIRE', KEYS[k + 1], ARGV[1])
  i = i + 2 + n
end
return #KEYS / 2
"""

_add_viewers_script = ClientScript(_ADD_VIEWERS_LUA)

TITLES_PER_CALL = 500
"""Titles per union-size script call: one command for many titles, short enough not to hold Redis for long."""


def apply_trending(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """SADD each minute's viewers, then recompute and swap in the newest trending window of each kind touched (all
    its titles when the window moved, else the titles the batch touched).

    Four round trips whatever the batch size (the set writes and the union sizes in one script call per
    :data:`TITLES_PER_CALL` titles): the set writes (with the stored window ends), the titles of the
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
    add = _add_viewers_script(ctx.client)
    for first in range(0, len(rows), TITLES_PER_CALL):
        chunk = rows[first:first + TITLES_PER_CALL]
        chunk_keys: list[str] = []
        args: list[Any] = [set_ttl]
        for row in chunk:
            kind, content, minute = row["content_kind"], row["content_id"], row["start"]
            chunk_keys += [ctx.keys.trending_viewers(kind, content, minute), ctx.keys.trending_titles(kind, minute)]
            args += [content, len(row["viewers"]), *row["viewers"]]
        add(keys=chunk_keys, args=args, client=pipe)
    for kind in kinds:
        pipe.hmget(ctx.keys.trending_window(kind), ["start", "end"])
        pipe.exists(ctx.keys.trending(kind))
    replies = pipe.execute()[-2 * len(kinds):]
    recorded = {k: (replies[2 * i], bool(replies[2 * i + 1])) for i, k in enumerate(kinds)}

    slide = settings.speed_trending_slide_seconds
    newest_end = max(row["start"] for row in rows) + SPEED_BUCKET_SECONDS
    batch_end = math.ceil(newest_end / slide) * slide
    stored = {k: int(text(end)) if end is not None else None for k, ((_, end), _) in recorded.items()}
    ends = {k: max(batch_end, end) if end is not None else batch_end for k, end in stored.items()}
    minutes = {k: window_buckets(ends[k] - window, ends[k]) for k in kinds}
    # A window that moved (or changed length, or whose ranking is gone) is ranked anew from every title of its
    # minutes; in the same window only the titles this batch added viewers to can have changed.
    moved = {k: (stored[k] != ends[k] or not recorded[k][1] or recorded[k][0][0] is None
                 or int(text(recorded[k][0][0])) != ends[k] - window) for k in kinds}

    pipe = ctx.client.pipeline(transaction=False)
    for kind in kinds:
        if moved[kind]:
            for minute in minutes[kind]:
                pipe.smembers(ctx.keys.trending_titles(kind, minute))
    member_sets = iter(pipe.execute())
    titles: dict[ContentKind, list[str]] = {}
    for kind in kinds:
        found: set[str] = set()
        if moved[kind]:
            for _minute in minutes[kind]:
                found.update(text(content) for content in next(member_sets))
        else:
            found.update(row["content_id"] for row in rows if row["content_kind"] == kind)
        titles[kind] = sorted(found)

    union_sizes = _union_sizes_script(ctx.client)
    pipe = ctx.client.pipeline(transaction=False)
    for kind in kinds:
        for first in range(0, len(titles[kind]), TITLES_PER_CALL):
            union_sizes(keys=[ctx.keys.trending_viewers(kind, content, m)
                              for content in titles[kind][first:first + TITLES_PER_CALL] for m in minutes[kind]],
                        args=[len(minutes[kind])], client=pipe)
    counts = iter([size for sizes in pipe.execute() for size in sizes])

    computed_at = round(time.time(), 3)
    # One transaction per batch: a reader sees the old ranking and window or the new ones, never a mix.
    swap = ctx.client.pipeline(transaction=True)
    for kind in kinds:
        ranking = {content: int(next(counts)) for content in titles[kind]}
        key, window_key = ctx.keys.trending(kind), ctx.keys.trending_window(kind)
        if moved[kind]:
            swap.delete(key)
        elif gone := [content for content, n in ranking.items() if n == 0]:
            swap.zrem(key, *gone)
        ranking = {content: n for content, n in ranking.items() if n > 0}
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

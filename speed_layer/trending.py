"""Trending titles, live and VOD apart, over every country and per country: distinct active viewers over a
sliding event-time window.

Spark cannot count distinct values exactly in a streaming aggregation, so the transform emits, per title, country
and 1-minute window, the set of users active on it (any playback event), and Redis does the distinct count: the
writer keeps, per title and scope (the kind, and the kind in the event's country), each viewer's newest minute
(ZADD GT, so a replay changes nothing), then recounts the newest sliding window of each scope the batch touched
(the viewers whose newest minute is in it) and swaps in the rankings
(:meth:`~warehouse_models.redis_keys.KeyLayout.trending`) with their windows in one transaction.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from speed_layer.query import SinkContext, shared_view
from warehouse_models.events import TopicKind
from warehouse_models.metrics.trending import CONTRIBUTIONS, KINDS
from warehouse_models.redis_io import ClientScript, text
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS, TRENDING_TTL_SECONDS, ContentKind

logger = logging.getLogger(__name__)


# KEYS: per title, its viewers and its scope's titles. ARGV: ttl, the oldest minute any window can still start at,
# then per title: content id, minute, n, n viewers. Each viewer's newest minute (ZADD GT: a replay or a late event
# never moves one back); the title's newest minute; the viewers and titles too old for any window from now on
# dropped.
_ADD_VIEWERS_LUA = """
local ttl, before, i = ARGV[1], '(' .. ARGV[2], 3
for k = 1, #KEYS, 2 do
  local content, minute, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first, last = i + 3, i + 2 + n
  -- In slices: unpack puts every value on Lua's stack, which holds about 8,000.
  for from = first, last, 1000 do
    local scored = {}
    for j = from, math.min(from + 999, last) do
      scored[#scored + 1] = minute
      scored[#scored + 1] = ARGV[j]
    end
    redis.call('ZADD', KEYS[k], 'GT', unpack(scored))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', before)
  redis.call('EXPIRE', KEYS[k], ttl)
  redis.call('ZADD', KEYS[k + 1], 'GT', minute, content)
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', before)
  redis.call('EXPIRE', KEYS[k + 1], ttl)
  i = last + 1
end
return #KEYS / 2
"""

_add_viewers_script = ClientScript(_ADD_VIEWERS_LUA)

# KEYS: viewer sorted sets. ARGV[1]: the window's start. Each set's viewers whose newest minute is in the window.
_COUNT_LUA = """
local counts = {}
for k = 1, #KEYS do
  counts[k] = redis.call('ZCOUNT', KEYS[k], ARGV[1], '+inf')
end
return counts
"""

_count_script = ClientScript(_COUNT_LUA)

TITLES_PER_CALL = 500
"""Titles per script call: one command for many titles, short enough not to hold Redis for long."""


Scope = tuple[ContentKind, "str | None"]
"""A ranking's scope: a content kind over every country (None) or in one country."""


def scope_rows(rows: list[dict[str, Any]]) -> dict[Scope, dict[tuple[str, int], set[str]]]:
    """The view's rows (per kind, country, title and minute) -> per scope, (title, minute) -> viewers: the kind's
    scope unites every country's viewers (and those of events without a country), a country's holds its own."""
    scopes: dict[Scope, dict[tuple[str, int], set[str]]] = {}
    for row in rows:
        kind, country, at = row["content_kind"], row["country"], (row["content_id"], int(row["start"]))
        scopes.setdefault((kind, None), {}).setdefault(at, set()).update(row["viewers"])
        if country is not None:
            scopes.setdefault((kind, country), {}).setdefault(at, set()).update(row["viewers"])
    return scopes


def apply_trending(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Record each viewer's newest minute per title in every scope, then recount and swap in the newest trending
    window of each scope touched: all its titles when the window moved (or the scope has no ranking yet), else
    the titles the batch touched.

    The window is the kind's: it ends at the end of the newest minute in the batch (rounded up to the slide), or
    later if a previous batch recorded a later end, so a batch of late events never moves the ranking back in time;
    every country of the kind ranks the same window. When it moves, every country with viewers in the new window
    or a ranking from the old one is ranked again, and a country left without viewers loses its ranking. A title's
    count is the number of its viewers whose newest minute is in the window. Four round trips whatever
    the batch size, five when a window moved (one script call per :data:`TITLES_PER_CALL` titles): the writes
    (with the stored windows), the countries of the moved windows, the titles of the scopes ranked anew, the
    counts, and the swap.
    """
    rows = [row for row in rows if row["viewers"]]
    ctx.stats["minute_sets_written"] = len(rows)
    if not rows:
        return
    settings = ctx.settings
    window = settings.speed_trending_window_seconds
    # A viewer set must outlive every window it counts in, also when the window is configured longer.
    set_ttl = max(TRENDING_TTL_SECONDS, window + settings.speed_allowed_lateness_seconds + SPEED_BUCKET_SECONDS)
    written = scope_rows(rows)
    kinds = [k for k in KINDS if (k, None) in written]
    keys = ctx.keys

    # Windows end at or after this batch's end (they never move back): a viewer older than its window's start is
    # never counted again.
    slide = settings.speed_trending_slide_seconds
    newest_end = max(row["start"] for row in rows) + SPEED_BUCKET_SECONDS
    batch_end = math.ceil(newest_end / slide) * slide
    pipe = ctx.client.pipeline(transaction=False)
    add = _add_viewers_script(ctx.client)
    entries = [(keys.trending_viewers(kind, content, country), keys.trending_titles(kind, country), content, minute,
                viewers)
               for (kind, country), found in written.items() for (content, minute), viewers in found.items()]
    for first in range(0, len(entries), TITLES_PER_CALL):
        chunk_keys: list[str] = []
        args: list[Any] = [set_ttl, batch_end - window]
        for viewers_key, titles_key, content, minute, members in entries[first:first + TITLES_PER_CALL]:
            chunk_keys += [viewers_key, titles_key]
            args += [content, minute, len(members), *members]
        add(keys=chunk_keys, args=args, client=pipe)
    for (kind, country), found in written.items():
        if country is not None:
            pipe.zadd(keys.trending_countries(kind), {country: max(minute for _, minute in found)}, gt=True)
            pipe.expire(keys.trending_countries(kind), set_ttl)
    for kind in kinds:
        pipe.hmget(keys.trending_window(kind), ["start", "end"])
        pipe.exists(keys.trending(kind))
        pipe.smembers(keys.trending_ranked_countries(kind))
    replies = pipe.execute()[-3 * len(kinds):]
    recorded = {k: (replies[3 * i], bool(replies[3 * i + 1])) for i, k in enumerate(kinds)}
    ranked = {k: {text(c) for c in replies[3 * i + 2]} for i, k in enumerate(kinds)}

    stored = {k: int(text(end)) if end is not None else None for k, ((_, end), _) in recorded.items()}
    ends = {k: max(batch_end, end) if end is not None else batch_end for k, end in stored.items()}
    starts = {k: ends[k] - window for k in kinds}
    # A window that moved (or changed length, or whose ranking is gone) is ranked anew from every title in it;
    # in the same window only the titles this batch added viewers to can have changed.
    moved = {k: (stored[k] != ends[k] or not recorded[k][1] or recorded[k][0][0] is None
                 or int(text(recorded[k][0][0])) != starts[k]) for k in kinds}

    pipe = ctx.client.pipeline(transaction=False)
    for kind in kinds:
        if moved[kind]:
            pipe.zrange(keys.trending_countries(kind), starts[kind], "+inf", byscore=True)
    country_sets = iter(pipe.execute())
    scopes: list[Scope] = []
    for kind in kinds:
        countries = {country for (k, country) in written if k == kind and country is not None}
        if moved[kind]:
            countries.update(text(country) for country in next(country_sets))
            countries |= ranked[kind]
        scopes += [(kind, None), *((kind, country) for country in sorted(countries))]
    # Ranked from every title in the window: a moved window, or a country without a ranking yet.
    full = {scope: moved[scope[0]] or (scope[1] is not None and scope[1] not in ranked[scope[0]])
            for scope in scopes}

    pipe = ctx.client.pipeline(transaction=False)
    for kind, country in scopes:
        if full[(kind, country)]:
            pipe.zrange(keys.trending_titles(kind, country), starts[kind], "+inf", byscore=True)
    in_window = iter(pipe.execute())
    titles: dict[Scope, list[str]] = {}
    for scope in scopes:
        if full[scope]:
            titles[scope] = sorted(text(content) for content in next(in_window))
        else:
            titles[scope] = sorted({content for content, _ in written.get(scope, {})})

    count = _count_script(ctx.client)
    pipe = ctx.client.pipeline(transaction=False)
    for (kind, country), names in titles.items():
        for first in range(0, len(names), TITLES_PER_CALL):
            chunk = names[first:first + TITLES_PER_CALL]
            count(keys=[keys.trending_viewers(kind, content, country) for content in chunk], args=[starts[kind]],
                  client=pipe)
    counts = iter([n for sizes in pipe.execute() for n in sizes])

    computed_at = round(time.time(), 3)
    # One transaction per batch: a reader sees the old rankings and windows or the new ones, never a mix.
    swap = ctx.client.pipeline(transaction=True)
    for (kind, country), names in titles.items():
        ranking = {content: int(next(counts)) for content in names}
        key, window_key = keys.trending(kind, country), keys.trending_window(kind, country)
        if full[(kind, country)]:
            swap.delete(key)
        elif gone := [content for content, n in ranking.items() if n == 0]:
            swap.zrem(key, *gone)
        ranking = {content: n for content, n in ranking.items() if n > 0}
        if ranking:
            swap.zadd(key, ranking)
            swap.expire(key, TRENDING_TTL_SECONDS)
        elif country is not None and full[(kind, country)]:
            # Recounted from every title in the window and none has viewers there: the country has no ranking.
            # (A batch that only brings late viewers from before the window leaves the ranking as it was.)
            swap.delete(window_key)
            swap.srem(keys.trending_ranked_countries(kind), country)
            continue
        if country is not None:
            swap.sadd(keys.trending_ranked_countries(kind), country)
            swap.expire(keys.trending_ranked_countries(kind), TRENDING_TTL_SECONDS)
        swap.hset(window_key, mapping={"start": starts[kind], "end": ends[kind], "computed_at": computed_at})
        swap.expire(window_key, TRENDING_TTL_SECONDS)
    swap.execute()
    ctx.stats["trending_titles"] = sum(len(names) for names in titles.values())
    ctx.stats["trending_scopes"] = len(titles)
    logger.debug("trending batch %d: %d minute sets, %d scopes, windows %s", ctx.batch_id, len(rows), len(titles),
                 ends)


QUERY = shared_view(
    name="trending",
    description="Distinct active viewers per title over a sliding window, live and VOD apart.",
    topics=(TopicKind.PLAYBACK,),
    contributions=CONTRIBUTIONS,
    apply=apply_trending,
    late_cut=True,
)

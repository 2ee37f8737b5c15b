"""Release notifications: a new title in the catalog notifies the users whose taste matches it.

A ``content_upsert`` of a VOD title whose ``release_date`` is at most ``notify_release_days`` before the record's
event time is a release (the catalog sent again with old titles notifies nobody). The users it notifies are those
whose genre affinity in the published recommendation model (``model_items``' ``affinity``, the share of their
watching by genre) matches the title's genres by at least ``notify_min_affinity``
(:func:`warehouse_models.recommendations.matching_users`), the best ``notify_max_users`` of them.

Redis, in one script call per chunk of users: a user's feed (``notifications``, a sorted set content id ->
release time) takes the title with ``ZADD NX`` only while the user's count for that UTC day
(``notifications_day``) is under ``notify_max_per_day``; an added title counts, and the feed keeps the newest
``notify_feed_max`` (a release older than everything in a full feed is trimmed at once and not counted). A replayed
batch adds nothing (the title is in the feed already). A user over the day's cap misses the release that day; if
the catalog is sent again on a later day within ``notify_release_days``, the title is offered again then. The
title's details go to the ``releases`` hash for the feed's readers. Without a published model there is no taste to
match, and the release is logged and skipped.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from speed_layer.query import SinkContext, shared_view
from warehouse_models.events import EventType, TopicKind
from warehouse_models.metrics.contributions import Contributions
from warehouse_models.recommendations import AFFINITY_ARRAYS, matching_users
from warehouse_models.redis_io import ClientScript, text
from warehouse_models.redis_keys import NOTIFICATIONS_TTL_SECONDS

if TYPE_CHECKING:
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
USERS_PER_CALL = 500


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    return (F.col("event_type") == EventType.CONTENT_UPSERT.value) & (F.col("content_type") == "vod")


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    return {"content_id": F.col("content_id"), "content_title": F.col("content_title"),
            "genre_primary": F.col("genre_primary"), "genre_secondary": F.col("genre_secondary"),
            "release_date": F.col("release_date").cast("string"),
            "event_time_ms": F.unix_millis(F.col("event_timestamp"))}


CONTRIBUTIONS = Contributions(where=_where, columns=_columns)
"""One row per VOD ``content_upsert``: id, title, genres, release date (ISO text) and event time (ms)."""


def releases(rows: Iterable[Mapping[str, Any]], *, max_age_days: int) -> dict[str, dict[str, Any]]:
    """The rows that are releases (release date at most ``max_age_days`` before the record), one per title (its
    earliest record)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        released = row.get("release_date")
        if not released:
            continue
        record_day = datetime.fromtimestamp(int(row["event_time_ms"]) / 1000, tz=timezone.utc).date()
        age = (record_day - date.fromisoformat(str(released)[:10])).days
        if age <= max_age_days:  # a release date ahead of the record (an announced title) counts too
            seen = out.get(row["content_id"])
            if seen is None or int(row["event_time_ms"]) < int(seen["event_time_ms"]):
                out[row["content_id"]] = dict(row)
    return out


# KEYS: per user, the feed then the day counter. ARGV: content id, release ms, cap per day, feed max, feed ttl.
_NOTIFY_LUA = """
local added = 0
for k = 1, #KEYS, 2 do
  local feed, day = KEYS[k], KEYS[k + 1]
  if tonumber(redis.call('GET', day) or '0') < tonumber(ARGV[3]) then
    if redis.call('ZADD', feed, 'NX', ARGV[2], ARGV[1]) == 1 then
      redis.call('ZREMRANGEBYRANK', feed, 0, -(tonumber(ARGV[4]) + 1))
      -- Counted only if it stayed: a release older than everything in a full feed is trimmed at once.
      if redis.call('ZSCORE', feed, ARGV[1]) then
        redis.call('INCR', day)
        redis.call('EXPIRE', day, 172800)
        redis.call('EXPIRE', feed, ARGV[5])
        added = added + 1
      end
    end
  end
end
return added
"""

_notify_script = ClientScript(_NOTIFY_LUA)

_affinity_cache: dict[str, tuple[np.ndarray, list[str], np.ndarray]] = {}


def _affinity(ctx: SinkContext) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """The published model's (user ids, genres, affinity), read once per model version."""
    version_raw = ctx.client.get(ctx.keys.model_pointer())
    if version_raw is None:
        return None
    version = text(version_raw)
    found = _affinity_cache.get(version)
    if found is None:
        raw = ctx.client.hget(ctx.keys.model_items(version), "affinity")
        if raw is None:
            return None
        with np.load(io.BytesIO(raw if isinstance(raw, bytes) else raw.encode()), allow_pickle=False) as data:
            users, genres, affinity = (data[name] for name in AFFINITY_ARRAYS)
        found = (users.astype(str), [str(g) for g in genres], affinity)
        _affinity_cache.clear()
        _affinity_cache[version] = found
    return found


def apply_releases(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    settings = ctx.settings
    found = releases(rows, max_age_days=settings.notify_release_days)
    if not found or settings.notify_max_per_day <= 0:
        return
    model = _affinity(ctx)
    if model is None:
        logger.warning("batch %d: %d release(s) %s and no published recommendation model to match tastes with; "
                       "nobody notified", ctx.batch_id, len(found), sorted(found))
        return
    users, genres, affinity = model
    notified = 0
    for content_id, row in sorted(found.items()):
        ms = int(row["event_time_ms"])
        ctx.client.hset(ctx.keys.releases(), content_id, json.dumps({
            "title": row.get("content_title"), "genre_primary": row.get("genre_primary"),
            "genre_secondary": row.get("genre_secondary"), "release_date": row.get("release_date"),
            "notified_at_ms": ms}))
        picked, _ = matching_users(affinity, genres, row.get("genre_primary"), row.get("genre_secondary"),
                                   threshold=settings.notify_min_affinity, limit=settings.notify_max_users)
        script = _notify_script(ctx.client)
        day = ms // DAY_MS
        pipe = ctx.client.pipeline(transaction=False)
        for first in range(0, len(picked), USERS_PER_CALL):
            keys: list[str] = []
            for user in users[picked[first:first + USERS_PER_CALL]]:
                keys += [ctx.keys.notifications(str(user)), ctx.keys.notifications_day(str(user), day)]
            script(keys=keys, args=[content_id, ms, settings.notify_max_per_day, settings.notify_feed_max,
                                    NOTIFICATIONS_TTL_SECONDS], client=pipe)
        added = sum(int(n) for n in pipe.execute())
        notified += added
        logger.info("release %s (%s): %d matching users, %d notified", content_id, row.get("genre_primary"),
                    len(picked), added)
    ctx.stats["notified"] = notified


QUERY = shared_view(
    name="releases",
    description="Release notifications: a new title notifies the users whose taste matches it",
    topics=(TopicKind.CATALOG,),
    contributions=CONTRIBUTIONS,
    apply=apply_releases,
)

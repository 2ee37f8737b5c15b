"""Recently watched titles per user, for live recommendations: the newest ``RECENT_ITEMS_MAX`` with their time.

Watching means a ``first_frame`` or a ``heartbeat`` whose ``player_state`` is ``playing`` (a paused or
buffering player is not watching). The transform is a projection and a filter.

Redis: ``recent_items(user)`` is a sorted set content id -> event time (ms) of the newest watching event.
``ZADD GT`` only moves a title forward in time. Trimming keeps the newest ``RECENT_ITEMS_MAX`` by (time, id): a
title trimmed away had that many newer ones, which only get newer, so an older event of it is trimmed again
at once and only a newer event brings it back, with that newer time. The set therefore ends the same
whatever order and batches the events come in, and a replayed batch changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from speed_layer.query import SinkContext, newest_per_title, shared_view
from warehouse_models.events import EventType, TopicKind
from warehouse_models.metrics.contributions import Contributions
from warehouse_models.redis_io import ClientScript
from warehouse_models.redis_keys import RECENT_ITEMS_MAX, RECENT_ITEMS_TTL_SECONDS

if TYPE_CHECKING:
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    watching = (kind == EventType.FIRST_FRAME.value) | (
        (kind == EventType.HEARTBEAT.value) & (F.col("player_state") == "playing"))
    return watching & F.col("user_id").isNotNull() & F.col("content_id").isNotNull()


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    return {"user_id": F.col("user_id"), "content_id": F.col("content_id"),
            "event_time_ms": F.unix_millis(F.col("event_timestamp"))}


CONTRIBUTIONS = Contributions(where=_where, columns=_columns)
"""One row per watching event (first frame, playing heartbeat): ``user_id``, ``content_id``, ``event_time_ms``
(long); the writer keeps the newest per title."""


def newest_watches(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Rows -> user -> content -> the newest event time (ms) among them, whatever their order."""
    return newest_per_title(rows, lambda row: int(row["event_time_ms"]))


# KEYS: users' recent-items sorted sets. ARGV: keep, ttl, then per set: n, then n x (event ms, content id).
_RECORD_WATCHES_LUA = """
local i = 3
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  -- In slices: unpack puts every value on Lua's stack, which holds about 8,000.
  for first = i + 1, i + 2 * n, 1000 do
    redis.call('ZADD', KEYS[k], 'GT', unpack(ARGV, first, math.min(first + 999, i + 2 * n)))
  end
  -- Ranks run from the oldest; everything below the newest `keep` goes.
  redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -(tonumber(ARGV[1]) + 1))
  redis.call('EXPIRE', KEYS[k], ARGV[2])
  i = i + 1 + 2 * n
end
return #KEYS
"""

_record_watches_script = ClientScript(_RECORD_WATCHES_LUA)

USERS_PER_CALL = 500
"""Users per script call: one command for many users, short enough not to hold Redis for long."""


def record_newest(ctx: SinkContext, newest: Mapping[str, Mapping[str, int]], key: Callable[[str], str], *,
                  keep: int, ttl: int) -> None:
    """Per user, ZADD GT each member's newest time (ms) and trim to the newest ``keep``: a script call per
    :data:`USERS_PER_CALL` users, one pipeline per micro-batch (recent titles, recent searches)."""
    users = sorted(newest)
    script = _record_watches_script(ctx.client)
    pipe = ctx.client.pipeline(transaction=False)
    for first in range(0, len(users), USERS_PER_CALL):
        chunk = users[first:first + USERS_PER_CALL]
        args: list[Any] = [keep, ttl]
        for user_id in chunk:
            members = newest[user_id]
            args.append(len(members))
            for member, ms in members.items():
                args += [ms, member]
        script(keys=[key(user) for user in chunk], args=args, client=pipe)
    pipe.execute()


def apply_recent(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """The newest watch of each title per user into the user's recent items (:func:`record_newest`)."""
    watches = newest_watches(rows)
    if not watches:
        return
    record_newest(ctx, watches, ctx.keys.recent_items, keep=RECENT_ITEMS_MAX, ttl=RECENT_ITEMS_TTL_SECONDS)
    ctx.stats["users"] = len(watches)
    logger.debug("batch %d: recent items of %d users updated", ctx.batch_id, len(watches))


QUERY = shared_view(
    name="recent",
    description="Recently watched titles per user (newest RECENT_ITEMS_MAX), for live recommendations",
    topics=(TopicKind.PLAYBACK,),
    contributions=CONTRIBUTIONS,
    apply=apply_recent,
)

"""Resume position per user and VOD title: the newest ``position_seconds`` by event time.

Every playback event that carries a position counts (heartbeat, pause, seek, play_end, ...), as in the
simulator's ground truth; live sessions have no resume position. The transform is a projection and a filter.

Redis: ``resume_position(user)`` maps content id -> ``"<event time ms>:<position seconds>"``. A Lua
compare-and-set writes a value only when its event time is at least the stored one, so a late older event
never moves the position back and a replayed batch writes the same values again. On equal event times the
larger position wins: the truth takes the later event in the stream there, an order a writer cannot rely on
across batches, and the outcome must not depend on how events fall into batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from speed_layer.query import SinkContext, newest_per_title, shared_view
from warehouse_models.events import PLAYBACK_TYPES, TopicKind
from warehouse_models.metrics.contributions import Contributions
from warehouse_models.redis_io import ClientScript
from warehouse_models.redis_keys import RESUME_TTL_SECONDS, KeyLayout

if TYPE_CHECKING:
    import redis
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

# KEYS: users' resume hashes. ARGV: ttl, then per hash: n, then n x (content id, event ms, position, value).
# (ms, position) compared as a pair: the newest event wins, equal times keep the larger position.
_SET_IF_NEWER_LUA = """
local written = 0
local i = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  for j = i + 1, i + 4 * n, 4 do
    local field, ms, pos = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
    local stored = redis.call('HGET', KEYS[k], field)
    local newer = true
    if stored then
      local sep = string.find(stored, ':', 1, true)
      local stored_ms, stored_pos = tonumber(string.sub(stored, 1, sep - 1)), tonumber(string.sub(stored, sep + 1))
      newer = ms > stored_ms or (ms == stored_ms and pos >= stored_pos)
    end
    if newer then
      redis.call('HSET', KEYS[k], field, ARGV[j + 3])
      written = written + 1
    end
  end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
  i = i + 1 + 4 * n
end
return written
"""

USERS_PER_CALL = 500
"""Users per script call of the micro-batch writer: one command for many users, short enough not to hold Redis
for long."""

_set_if_newer_script = ClientScript(_SET_IF_NEWER_LUA)
"""The compare-and-set script, registered once per client."""


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    return (F.col("event_type").isin(sorted(t.value for t in PLAYBACK_TYPES))
            & F.col("position_seconds").isNotNull()
            & ~F.coalesce(F.col("is_live"), F.lit(False))
            & F.col("user_id").isNotNull()
            & F.col("content_id").isNotNull())


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    return {"user_id": F.col("user_id"), "content_id": F.col("content_id"),
            "event_time_ms": F.unix_millis(F.col("event_timestamp")), "position_seconds": F.col("position_seconds")}


CONTRIBUTIONS = Contributions(where=_where, columns=_columns)
"""One row per playback event with a position on VOD content: ``user_id``, ``content_id``, ``event_time_ms``
(long), ``position_seconds`` (double); the writer keeps the newest per title."""


def newest_positions(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, tuple[int, float]]]:
    """Rows -> user -> content -> the newest (event ms, position) among them, whatever their order."""
    return newest_per_title(rows, lambda row: (int(row["event_time_ms"]), float(row["position_seconds"])))


def set_if_newer(client: redis.Redis, keys: KeyLayout, positions: Mapping[str, Mapping[str, tuple[int, float]]], *,
                 pipe: Any = None) -> Any:
    """Move users' positions forward in event time only: one compare-and-set script call for them all.

    The one write both sinks use: the micro-batch writer queues it per :data:`USERS_PER_CALL` users on a
    pipeline, the real-time writer (:mod:`speed_layer.realtime`) runs it per row on the client.

    Args:
        client: the Redis client (the script is registered on it once).
        positions: user id -> content id -> (event ms, position) to write if newer than what is stored.
        pipe: a pipeline of ``client`` to queue the call on instead of running it now.

    Returns:
        How many positions moved (or the pipeline, when queued).
    """
    hashes: list[str] = []
    args: list[Any] = [RESUME_TTL_SECONDS]
    for user_id, titles in positions.items():
        hashes.append(keys.resume_position(user_id))
        args.append(len(titles))
        for content_id, (ms, position) in sorted(titles.items()):
            args += [content_id, ms, repr(position), f"{ms}:{position!r}"]
    return _set_if_newer_script(client)(keys=hashes, args=args, client=pipe if pipe is not None else client)


def apply_resume(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Move each (user, title) position forward in event time only: a script call per :data:`USERS_PER_CALL`
    users, one pipeline."""
    positions = newest_positions(rows)
    if not positions:
        return
    users = sorted(positions)
    pipe = ctx.client.pipeline(transaction=False)
    for first in range(0, len(users), USERS_PER_CALL):
        chunk = users[first:first + USERS_PER_CALL]
        set_if_newer(ctx.client, ctx.keys, {user: positions[user] for user in chunk}, pipe=pipe)
    written = sum(pipe.execute())
    ctx.stats["positions_moved"] = written
    logger.debug("batch %d: %d resume positions moved for %d users", ctx.batch_id, written, len(positions))




QUERY = shared_view(
    name="resume",
    description="Resume position per user and VOD title: the newest position by event time",
    topics=(TopicKind.PLAYBACK,),
    contributions=CONTRIBUTIONS,
    apply=apply_resume,
)

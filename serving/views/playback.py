"""May this stream play? ``authorize`` decides atomically in Redis, from the speed layer's streams and the grants.

A session *plays* while the speed layer heard its heartbeat within ``speed_heartbeat_timeout_seconds`` of now,
or while it holds a grant (a lease from an allowed authorize, ``serving_lease_seconds`` long), and it has not
ended explicitly (``play_end`` or a fatal error). Its start is the earlier of its first heartbeat and its first
grant. Playing sessions are ranked by (start, session id): the first ``limit`` of them keep playing, whatever
starts later is over the limit. So:

* a playing session within the first ``limit`` is allowed (``within_limit``) and its lease renewed;
* a playing session ranked past the limit is denied (``over_limit``) and loses its lease;
* a new session is allowed while fewer than ``limit`` sessions play, else denied (``limit_reached``);
* without a plan record for the account the limit is unknown and every session is allowed (``limit_unknown``);
* a session that ended explicitly may not play again under the same id (``session_ended``): a new playback is a
  new session.

A grant's start is kept while the session holds its lease or is still heard, so a player that authorized and
then streams keeps its place after the lease runs out; a grant of a session neither leased nor heard is dropped.

The decision, the lease and the per-minute decision counts are one Lua script call: two devices that ask at
the same instant are decided one after the other, and only one of them takes the last slot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from warehouse_models.redis_io import text
from warehouse_models.redis_keys import DECISIONS_TTL_SECONDS, KeyLayout, bucket_start
from warehouse_models.redis_plan import Command, Plan, ScriptCall, run

# KEYS: plan limits, last heartbeats, first heartbeats, explicit ends, leases, lease starts, devices, decisions.
# ARGV: account, session, device, now ms, heartbeat timeout ms, lease ms, decisions ttl, state ttl.
# Returns: {allowed 0/1, reason, limit or false, {session, start ms, device or false, ...} in start order}.
_AUTHORIZE_LUA = """
local account, session, device = ARGV[1], ARGV[2], ARGV[3]
local now, timeout, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. now)
local heard = {}
for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now - timeout, '+inf')) do heard[s] = true end
local starts = {}
local function consider(s, at)
  if starts[s] == nil or at < starts[s] then starts[s] = at end
end
for s in pairs(heard) do consider(s, tonumber(redis.call('ZSCORE', KEYS[3], s) or now)) end
-- A grant's start counts while the session holds its lease or is still heard; otherwise it is forgotten.
local granted = redis.call('ZRANGE', KEYS[6], 0, -1, 'WITHSCORES')
for i = 1, #granted, 2 do
  local s = granted[i]
  if heard[s] or redis.call('ZSCORE', KEYS[5], s) then
    consider(s, tonumber(granted[i + 1]))
  else
    redis.call('ZREM', KEYS[6], s)
    redis.call('HDEL', KEYS[7], s)
  end
end
local playing = {}
for s, at in pairs(starts) do
  if not redis.call('ZSCORE', KEYS[4], s) then playing[#playing + 1] = {at, s} end
end
table.sort(playing, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local rank = nil
for i, entry in ipairs(playing) do
  if entry[2] == session then rank = i end
end
local limit = redis.call('HGET', KEYS[1], account)
local allowed, reason = 1, 'within_limit'
if redis.call('ZSCORE', KEYS[4], session) then
  allowed, reason = 0, 'session_ended'
elseif not limit then
  reason = 'limit_unknown'
elseif rank then
  if rank > tonumber(limit) then allowed, reason = 0, 'over_limit' end
elseif #playing >= tonumber(limit) then
  allowed, reason = 0, 'limit_reached'
end
if allowed == 1 then
  redis.call('ZADD', KEYS[5], now + lease, session)
  redis.call('ZADD', KEYS[6], 'LT', starts[session] or now, session)
  redis.call('HSET', KEYS[7], session, device)
  if not rank then playing[#playing + 1] = {now, session} end
else
  redis.call('ZREM', KEYS[5], session)
  redis.call('ZREM', KEYS[6], session)
  redis.call('HDEL', KEYS[7], session)
end
for i = 5, 7 do redis.call('EXPIRE', KEYS[i], ARGV[8]) end
redis.call('HINCRBY', KEYS[8], allowed == 1 and 'allowed' or ('denied:' .. reason), 1)
redis.call('EXPIRE', KEYS[8], ARGV[7])
local active = {}
for _, entry in ipairs(playing) do
  active[#active + 1] = entry[2]
  active[#active + 1] = tostring(entry[1])
  active[#active + 1] = redis.call('HGET', KEYS[7], entry[2]) or ''
end
return {allowed, reason, limit or '', active}
"""

REASONS = ("within_limit", "limit_unknown", "over_limit", "limit_reached", "session_ended")
"""Every reason an answer can carry; the first two allow, the others deny."""


@dataclass(frozen=True)
class ActiveStream:
    """One playing session of the account, in start order."""

    session_id: str
    started_ms: int
    device_type: str | None


@dataclass(frozen=True)
class Decision:
    """The answer to "may this stream play?"."""

    allowed: bool
    reason: str
    limit: int | None
    active: list[ActiveStream]
    """The account's playing sessions after the decision, earliest start first."""


def authorize(keys: KeyLayout, *, account_id: str, session_id: str, device_type: str,
              heartbeat_timeout_seconds: int, lease_seconds: int, now_ms: int | None = None) -> Plan[Decision]:
    """Decide, record the grant (or drop it) and count the answer, in one atomic script call."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    (reply,) = yield [ScriptCall(
        _AUTHORIZE_LUA,
        keys=(keys.account_plan_limits(), keys.account_streams(account_id), keys.account_stream_starts(account_id),
              keys.account_streams_ended(account_id), keys.playback_leases(account_id),
              keys.playback_lease_starts(account_id), keys.playback_devices(account_id),
              keys.playback_decisions(bucket_start(now / 1000))),
        args=(account_id, session_id, device_type, now, heartbeat_timeout_seconds * 1000, lease_seconds * 1000,
              DECISIONS_TTL_SECONDS, max(lease_seconds, heartbeat_timeout_seconds) * 4),
    )]
    allowed, reason, limit, flat = reply
    active = [ActiveStream(text(flat[i]), int(text(flat[i + 1])), text(flat[i + 2]) or None)
              for i in range(0, len(flat), 3)]
    limit_text = text(limit) if limit else ""
    return Decision(bool(allowed), text(reason), int(limit_text) if limit_text else None, active)


def authorize_now(client: redis.Redis, keys: KeyLayout, **kwargs: Any) -> Decision:
    """:func:`authorize` with a blocking client."""
    return run(client, authorize(keys, **kwargs))


def decisions(keys: KeyLayout, *, minutes: int, now: float | None = None) -> Plan[dict[int, dict[str, int]]]:
    """Authorize answers per minute (bucket start epoch s -> ``allowed`` / ``denied:<reason>`` -> count), for the
    last ``minutes`` minutes, oldest first; minutes without answers are left out."""
    newest = bucket_start(time.time() if now is None else now)
    buckets = [newest - 60 * k for k in range(minutes - 1, -1, -1)]
    replies = yield [Command("HGETALL", keys.playback_decisions(bucket)) for bucket in buckets]
    return {bucket: {text(k): int(v) for k, v in fields.items()}
            for bucket, fields in zip(buckets, replies, strict=True) if fields}


def read_decisions(client: redis.Redis, keys: KeyLayout, *, minutes: int, now: float | None = None
                   ) -> dict[int, dict[str, int]]:
    return run(client, decisions(keys, minutes=minutes, now=now))

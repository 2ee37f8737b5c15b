"""Concurrent streams per account from the 10-second heartbeats alone: "may this stream play?" and its history.

The transform only projects and filters (no Spark state): heartbeats, explicit ends (``play_end`` and fatal
``error``) and the plan limits of the catalog's ``user_upsert`` records. Each micro-batch then goes to Redis
with writes whose result does not depend on the order or the batch boundaries of the events:

* ``account_plan_limits``: account -> ``max_streams``; the newest user record by event time wins (its time is
  kept in ``account_plan_limit_times``; on equal times the larger limit), so a late old record never
  overwrites a plan change;
* ``account_streams`` (``ZADD GT``: last heartbeat), ``account_stream_starts`` (``ZADD LT``: first heartbeat)
  and ``account_streams_ended`` (``ZADD GT``: explicit end) per account;
* then, for every account the batch touched, the view is recomputed from what those keys hold (read back in
  the same pipeline, written in a second one): ``account_over_limit`` and the JSON of
  ``account_concurrency``. Both are functions of the stored state only, and the stored state is the same
  whatever order the events came in, so replays and late events converge to the same answer.

Over the limit (``account_over_limit``) is the simulator's ground truth (``concurrency_violations``): a
session streams from its first to its last heartbeat, both inclusive, with no timeout slack; sessions are
taken in order of (first heartbeat, last heartbeat, id); one that starts while at least ``limit`` sessions
stream (over-limit ones included) is over the limit, and stays recorded after it ends. Without a plan record
the limit is unknown and nobody is over it, as the truth skips such accounts. Intentional differences:

* "Active now" (the JSON's ``active``) is not the truth's interval: a session is active while its last
  heartbeat is at most ``speed_heartbeat_timeout_seconds`` older than the account's newest event and it has
  not ended explicitly, because a stream between two heartbeats is still on screen, and a ``play_end`` says
  it stopped without waiting for the timeout.
* Retention: a session whose last heartbeat is more than ``CONCURRENCY_TTL_SECONDS`` older than the
  account's newest event is dropped from the stream sets, so an account that streams around the clock keeps
  a bounded state. A session's verdict is recomputed while it started after that horizon (everyone who
  overlapped it is still kept, so the verdict is exact) and frozen before it. The order independence above
  therefore holds for events that arrive less than that long after the account's newest event.
* Plan changes: the truth applies the last ``user_upsert`` in the stream; here the newest by event time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from speed_layer.query import SinkContext, shared_view
from warehouse_models.events import EventType, TopicKind
from warehouse_models.metrics.concurrency import over_limit_sessions
from warehouse_models.metrics.contributions import Contributions
from warehouse_models.redis_io import ClientScript, text
from warehouse_models.redis_keys import CONCURRENCY_TTL_SECONDS

if TYPE_CHECKING:
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

RETENTION_MS = CONCURRENCY_TTL_SECONDS * 1000
"""Sessions not heard of for this long (behind the account's newest event) are forgotten."""

_ENDS = (EventType.PLAY_END.value, EventType.ERROR.value)
"""Event types that end a session explicitly (the transform keeps only the fatal errors)."""

# KEYS: limits hash, limit times hash. ARGV: ttl, account, event ms, limit.
# Newest record by event time wins; equal times keep the larger limit, so the outcome is order-free.
_PLAN_LIMIT_LUA = """
local account, ms, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local stored_at = redis.call('HGET', KEYS[2], account)
local newer = not stored_at or ms > tonumber(stored_at)
if not newer and ms == tonumber(stored_at) then
  newer = limit > tonumber(redis.call('HGET', KEYS[1], account) or '0')
end
if newer then
  redis.call('HSET', KEYS[1], account, ARGV[4])
  redis.call('HSET', KEYS[2], account, ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return newer and 1 or 0
"""

_plan_limit_script = ClientScript(_PLAN_LIMIT_LUA)
"""The plan-limit compare-and-set script, registered once per client."""


# KEYS[1]: the plan limits hash, KEYS[2]: the live sessions of every account; then 4 per account: last heartbeats,
# first heartbeats, ends, over-limit sessions.
# ARGV: ttl, then per account: account id, n, n x (session, first ms, last ms), m, m x (session, end ms).
# Returns per account: {limit or nil, first heartbeats, last heartbeats, ends, over-limit} (member, score lists).
# A session is live (member "<account>/<session>", score its last heartbeat) until it ends explicitly; an end
# recorded before its heartbeats arrive keeps it out, so the outcome does not depend on the order of events.
_RECORD_AND_READ_LUA = """
local out = {}
local i = 2
for k = 3, #KEYS, 4 do
  local account, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  for j = 1, n do
    redis.call('ZADD', KEYS[k], 'GT', ARGV[i + 2], ARGV[i])
    redis.call('ZADD', KEYS[k + 1], 'LT', ARGV[i + 1], ARGV[i])
    if not redis.call('ZSCORE', KEYS[k + 2], ARGV[i]) then
      redis.call('ZADD', KEYS[2], 'GT', ARGV[i + 2], account .. '/' .. ARGV[i])
    end
    i = i + 3
  end
  if n > 0 then
    redis.call('EXPIRE', KEYS[k], ARGV[1])
    redis.call('EXPIRE', KEYS[k + 1], ARGV[1])
  end
  local m = tonumber(ARGV[i])
  i = i + 1
  for j = 1, m do
    redis.call('ZADD', KEYS[k + 2], 'GT', ARGV[i + 1], ARGV[i])
    redis.call('ZREM', KEYS[2], account .. '/' .. ARGV[i])
    i = i + 2
  end
  if m > 0 then
    redis.call('EXPIRE', KEYS[k + 2], ARGV[1])
  end
  out[#out + 1] = {redis.call('HGET', KEYS[1], account),
                   redis.call('ZRANGE', KEYS[k + 1], 0, -1, 'WITHSCORES'),
                   redis.call('ZRANGE', KEYS[k], 0, -1, 'WITHSCORES'),
                   redis.call('ZRANGE', KEYS[k + 2], 0, -1, 'WITHSCORES'),
                   redis.call('ZRANGE', KEYS[k + 3], 0, -1, 'WITHSCORES')}
end
if #KEYS > 2 then
  -- Sessions that went quiet without an explicit end leave after the retention (behind the newest heartbeat).
  local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if #newest > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(newest[2]) - tonumber(ARGV[1]) * 1000))
  end
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return out
"""

_record_and_read_script = ClientScript(_RECORD_AND_READ_LUA)
"""Records an account's heartbeats and ends and reads its state back, registered once per client."""

ACCOUNTS_PER_CALL = 250
"""Accounts per record-and-read script call: one command for many accounts, short enough not to hold Redis long."""


# --- the transform ---------------------------------------------------------------------------------------


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    wanted = (
        kind.isin(EventType.HEARTBEAT.value, EventType.PLAY_END.value)
        | ((kind == EventType.ERROR.value) & F.coalesce(F.col("error_fatal"), F.lit(False)))
        | ((kind == EventType.USER_UPSERT.value) & F.col("max_streams").isNotNull())
    )
    return wanted & F.col("account_id").isNotNull()


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    return {
        "account_id": F.col("account_id"),
        "session_id": F.when(kind != EventType.USER_UPSERT.value, F.col("session_id")),
        "event_type": kind,
        "event_time_ms": F.unix_millis(F.col("event_timestamp")),
        "max_streams": F.when(kind == EventType.USER_UPSERT.value, F.col("max_streams")),
    }


CONTRIBUTIONS = Contributions(where=_where, columns=_columns)
"""The events concurrency needs, one row each (no state): heartbeats, ``play_end``, fatal errors and
``user_upsert`` records with a limit; everything else (``content_upsert`` included) gives none. Columns:
``account_id``, ``session_id`` (null on plan records), ``event_type``, ``event_time_ms`` (long), ``max_streams``
(int, only on ``user_upsert``)."""


# --- the view, as a function of what Redis holds ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountStreams:
    """What Redis holds for one account after a batch's writes."""

    limit: int | None
    starts: Mapping[str, int]
    """Session -> first heartbeat (ms)."""
    lasts: Mapping[str, int]
    """Session -> last heartbeat (ms)."""
    ended: Mapping[str, int]
    """Session -> explicit end (ms)."""
    over_limit: Mapping[str, int]
    """The recorded over-limit sessions -> start (ms)."""


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """What to write back for one account."""

    view: dict[str, Any] | None
    """The JSON of ``account_concurrency``; None when the account has no streams to speak of."""
    over_add: dict[str, int]
    over_remove: list[str]
    forget_sessions: list[str]
    forget_ended_before_ms: int | None


def account_update(state: AccountStreams, *, timeout_ms: int, retention_ms: int = RETENTION_MS) -> AccountUpdate:
    """Recompute one account's view from its stored state (see the module docs for the rules)."""
    # A session is in both sets unless a write was cut short; then its one known time stands for both.
    intervals = {
        sid: (state.starts.get(sid, state.lasts.get(sid, 0)), state.lasts.get(sid, state.starts.get(sid, 0)))
        for sid in state.starts.keys() | state.lasts.keys()
    }
    newest = [*state.lasts.values(), *state.ended.values()]
    if not newest:
        return AccountUpdate(None, {}, [], [], None)
    as_of = max(newest)
    horizon = as_of - retention_ms
    forget = sorted(sid for sid, (_, last) in intervals.items() if last < horizon)
    kept = {sid: iv for sid, iv in intervals.items() if iv[1] >= horizon}
    over = over_limit_sessions(((first, last, sid) for sid, (first, last) in kept.items()), state.limit)
    # Everyone who overlapped a session that started at or after the horizon is still kept, so only those
    # verdicts are exact; older ones stay as they were recorded.
    exact = {sid for sid, (first, _) in kept.items() if first >= horizon}
    over_add = {sid: start for sid, start in over.items() if sid in exact}
    over_remove = sorted(sid for sid in state.over_limit if sid in exact and sid not in over)
    recorded = (set(state.over_limit) - set(over_remove)) | set(over_add)
    active = sorted(
        (sid for sid, (_, last) in kept.items() if last >= as_of - timeout_ms and sid not in state.ended),
        key=lambda sid: (kept[sid][0], sid),
    )
    view = {
        "limit": state.limit,
        "active": active,
        "over_limit": [sid for sid in reversed(active) if sid in recorded],
        "as_of_ms": as_of,
    }
    ended_cut = horizon if any(ms < horizon for ms in state.ended.values()) else None
    return AccountUpdate(view, over_add, over_remove, forget, ended_cut)


# --- the writer --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class BatchEvents:
    """One micro-batch reduced per account: order inside the batch no longer matters."""

    limits: dict[str, tuple[int, int]]
    starts: dict[str, dict[str, int]]
    lasts: dict[str, dict[str, int]]
    ends: dict[str, dict[str, int]]

    @property
    def accounts(self) -> list[str]:
        return sorted(self.limits.keys() | self.lasts.keys() | self.ends.keys())


def reduce_batch(rows: Iterable[Mapping[str, Any]]) -> BatchEvents:
    """Rows of :data:`CONTRIBUTIONS` -> per account: newest plan record, first/last heartbeat and end per session."""
    out = BatchEvents({}, {}, {}, {})
    for row in rows:
        account, session, kind, ms = row["account_id"], row["session_id"], row["event_type"], int(row["event_time_ms"])
        if kind == EventType.USER_UPSERT.value:
            candidate = (ms, int(row["max_streams"]))
            out.limits[account] = max(out.limits.get(account, candidate), candidate)
        elif session is None:
            continue
        elif kind == EventType.HEARTBEAT.value:
            starts, lasts = out.starts.setdefault(account, {}), out.lasts.setdefault(account, {})
            starts[session] = min(starts.get(session, ms), ms)
            lasts[session] = max(lasts.get(session, ms), ms)
        elif kind in _ENDS:
            ends = out.ends.setdefault(account, {})
            ends[session] = max(ends.get(session, ms), ms)
    return out


def _scores(flat: list[bytes]) -> dict[str, int]:
    """A script's ``ZRANGE ... WITHSCORES`` reply (member, score, member, score, ...) -> member -> score."""
    return {text(flat[i]): int(float(flat[i + 1])) for i in range(0, len(flat), 2)}


def apply_concurrency(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Record one micro-batch's heartbeats, ends and plan limits, then recompute the touched accounts' view."""
    reduced = reduce_batch(rows)
    accounts = reduced.accounts
    if not accounts:
        return
    keys, ttl = ctx.keys, CONCURRENCY_TTL_SECONDS
    limits_key = keys.account_plan_limits()
    script = _plan_limit_script(ctx.client)

    pipe = ctx.client.pipeline(transaction=False)
    for account, (ms, limit) in sorted(reduced.limits.items()):
        script(keys=[limits_key, keys.account_plan_limit_times()], args=[ttl, account, ms, limit], client=pipe)
    # Each account's heartbeats and ends recorded, then its state read back, in one script call per
    # ACCOUNTS_PER_CALL accounts: the view is a function of the stored state only.
    record = _record_and_read_script(ctx.client)
    calls = 0
    for first in range(0, len(accounts), ACCOUNTS_PER_CALL):
        chunk = accounts[first:first + ACCOUNTS_PER_CALL]
        chunk_keys: list[str] = [limits_key, keys.live_sessions()]
        args: list[Any] = [ttl]
        for account in chunk:
            chunk_keys += [keys.account_streams(account), keys.account_stream_starts(account),
                           keys.account_streams_ended(account), keys.account_over_limit(account)]
            lasts, starts, ends = reduced.lasts.get(account, {}), reduced.starts.get(account, {}), \
                reduced.ends.get(account, {})
            args += [account, len(lasts)]
            for session, last in lasts.items():
                args += [session, starts[session], last]
            args.append(len(ends))
            for session, ended in ends.items():
                args += [session, ended]
        record(keys=chunk_keys, args=args, client=pipe)
        calls += 1
    replies = [reply for chunk_replies in pipe.execute()[-calls:] for reply in chunk_replies]

    timeout_ms = ctx.settings.speed_heartbeat_timeout_seconds * 1000
    pipe = ctx.client.pipeline(transaction=False)
    # The catalog may send plan records once a day; they must outlive the stream sets while the view runs.
    pipe.expire(limits_key, ttl)
    pipe.expire(keys.account_plan_limit_times(), ttl)
    views = over_total = 0
    for account, (limit, starts, lasts, ended, over) in zip(accounts, replies, strict=True):
        state = AccountStreams(int(limit) if limit is not None else None, _scores(starts), _scores(lasts),
                               _scores(ended), _scores(over))
        update = account_update(state, timeout_ms=timeout_ms)
        if update.forget_sessions:
            pipe.zrem(keys.account_streams(account), *update.forget_sessions)
            pipe.zrem(keys.account_stream_starts(account), *update.forget_sessions)
            pipe.zrem(keys.live_sessions(), *(f"{account}/{session}" for session in update.forget_sessions))
        if update.forget_ended_before_ms is not None:
            pipe.zremrangebyscore(keys.account_streams_ended(account), "-inf", f"({update.forget_ended_before_ms}")
        over_key = keys.account_over_limit(account)
        if update.over_add:
            pipe.zadd(over_key, update.over_add)
            pipe.expire(over_key, ttl)
        if update.over_remove:
            pipe.zrem(over_key, *update.over_remove)
        if update.view is not None:
            pipe.set(keys.account_concurrency(account), json.dumps(update.view, separators=(",", ":")), ex=ttl)
            views += 1
            over_total += len(update.view["over_limit"])
    pipe.execute()
    ctx.stats.update({"accounts": len(accounts), "active_over_limit": over_total})
    logger.debug("batch %d: %d accounts touched, %d views written, %d active streams over their limit",
                 ctx.batch_id, len(accounts), views, over_total)



QUERY = shared_view(
    name="concurrency",
    description="Concurrent streams per account from heartbeats: which play now, and which went over the plan",
    topics=(TopicKind.PLAYBACK, TopicKind.CATALOG),
    contributions=CONTRIBUTIONS,
    apply=apply_concurrency,
)

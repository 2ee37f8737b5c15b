"""Traffic-spike alerts: events per second per topic kind and per title, against a moving baseline.

The transform counts events per (scope, 1-second event-time window); a scope is ``topic:<kind>`` for every valid
event (playback, interactions, catalog, derived: the topic it travels on) and ``content:<id>`` for viewer events
(playback and interactions) that name a title. Catalog upserts and view ends are not traffic on a title.

The writer adds each second's count of the batch (``HINCRBY``, fenced by the batch id) to the scope's minute bucket,
``KeyLayout.traffic_bucket(scope, minute)``, field = the second's epoch, and then judges, in time order, every
complete second it has not judged yet of every scope the batch touched and every scope with an open alert. The
newest second of the micro-batch may still be filling, so the newest complete second is the one before it. The
``KeyLayout.spike_judged()`` hash keeps each scope's last judged second; a scope is judged from the second after
it (without one: from the scope's first second in the batch, or from the newest complete second for an open
alert alone), at most :data:`MAX_JUDGED_SECONDS` back, up to the newest complete second:

* the **rate** is that second's count; the **baseline** is the mean events/s over the
  ``speed_spike_baseline_seconds`` seconds before it (read back from the traffic buckets, missing seconds are 0;
  a running window sum, so a long range costs one step per second);
* a second **spikes** when rate > ``speed_spike_factor`` × baseline and rate >= ``speed_spike_min_eps``;
* with no open alert for the scope, a spiking second **raises** one: an entry ``{type: raised, scope, rate,
  baseline, factor, since}`` on the ``KeyLayout.spike_alerts()`` stream and the alert in the
  ``KeyLayout.spike_active()`` hash;
* an open alert is **cleared** when none of the last :data:`CLEAR_AFTER_SECONDS` seconds spiked against the
  baseline the alert was raised with (the traffic before the spike; a moving baseline would take the spike in and
  clear a spike that is still going on): ``{type: cleared, scope, rate, baseline, factor, since, until}`` and the
  scope leaves the hash.

The open alert is carried from second to second, so a catch-up micro-batch (an ``availableNow`` run over a
range, a restart after downtime) judges every second it holds: a spike that rises and falls inside it gives one
raised and one cleared entry, in time order. The counts, the alerts and the new judged marks are written in one
``MULTI``/``EXEC`` transaction, so a crash never leaves alerts without their marks, and a replayed micro-batch
finds its seconds judged and adds nothing. Raising and clearing are Lua scripts that add the stream entry only
if they changed the open-alert hash (``HSETNX`` / ``HDEL``), a second guard against repeats. An event arriving
after its second was judged is counted in the traffic bucket (and weighs in later baselines), but its second is
not judged again. Nothing is judged during the first ``speed_spike_baseline_seconds`` after the first second the
detector ever counted (``KeyLayout.spike_counting_since()``): against an empty history every busy scope would
look like a spike. A title that appears later starts from a zero baseline, so a new live channel that opens with
thousands of viewers does raise an alert.

The baseline's history comes from a copy in the writer's memory of the counts it read and wrote (exact, since
this writer alone writes the traffic buckets of its checkpoint); a scope's history is read from the buckets only
when the copy does not cover the seconds a judgement needs (a new scope, a restart, every minute or so as the
seconds move on), and the copy is dropped whenever a write may not have landed.

Alerts stay in Redis: the derived Kafka topic carries envelope events only (view_end), and an alert is not one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from speed_layer.query import SinkContext, commit_fence, fenced, shared_view
from warehouse_models.events import INTERACTION_TYPES, PLAYBACK_TYPES, TOPIC_OF_EVENT, TopicKind
from warehouse_models.metrics.contributions import Contributions, window_start
from warehouse_models.redis_io import text
from warehouse_models.redis_keys import (
    SPEED_BUCKET_SECONDS,
    SPEED_BUCKET_TTL_SECONDS,
    TRAFFIC_TTL_SECONDS,
    KeyLayout,
    bucket_start,
)
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

CLEAR_AFTER_SECONDS = 10
"""An open alert clears after this many consecutive seconds without a spike."""

MAX_JUDGED_SECONDS = 3600
"""A scope is judged at most this many seconds back from the newest complete second, so a long-idle scope or a
long catch-up batch does not loop for hours; judged marks older than that are dropped."""

ALERTS_MAX_ENTRIES = 10_000
"""The alert stream is trimmed to about this many entries."""

ALERTS_TTL_SECONDS = SPEED_BUCKET_TTL_SECONDS
"""The alert stream, the open-alert hash and the judged marks expire this long after the spike writer last ran."""

TOPIC_SCOPE = "topic:"
CONTENT_SCOPE = "content:"

# Add the entry only when the open-alert hash changed: a replayed micro-batch finds the alert already open
# (or already closed) and adds nothing.
_RAISE_LUA = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
  return 1
end
return 0
"""
_CLEAR_LUA = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
  return 1
end
return 0
"""


# --- the transform ------------------------------------------------------------------------------------------


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    kinds = F.create_map(*[F.lit(v) for t, k in sorted(TOPIC_OF_EVENT.items()) for v in (t.value, k.value)])
    viewer = sorted(t.value for t in PLAYBACK_TYPES | INTERACTION_TYPES)
    topic_scope = F.concat(F.lit(TOPIC_SCOPE), kinds[F.col("event_type")])
    content_scope = F.when(F.col("event_type").isin(viewer) & F.col("content_id").isNotNull(),
                           F.concat(F.lit(CONTENT_SCOPE), F.col("content_id")))
    return {"scope": F.filter(F.array(topic_scope, content_scope), lambda scope: scope.isNotNull()),
            "second": window_start(1), "events": F.lit(1).cast("long")}


def _every_event() -> SparkColumn:
    from pyspark.sql import functions as F

    return F.lit(True)


CONTRIBUTIONS = Contributions(where=_every_event, columns=_columns, keys=("scope", "second"), sums=("events",),
                              explode="scope")
"""Per valid event: its scopes (its topic kind; its title for a viewer event that names one) and its second
(epoch): the events per (scope, second)."""


# --- detection (pure) ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """An alert to raise or clear for one scope."""

    type: Literal["raised", "cleared"]
    scope: str
    rate: int
    baseline: float
    factor: float
    since: int
    """Epoch second the spike was first seen (the raising second)."""
    until: int | None = None
    """Epoch second the alert cleared at."""

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        out = {"type": self.type, "scope": self.scope, "rate": str(self.rate), "baseline": f"{self.baseline:.3f}",
               "factor": f"{self.factor:g}", "since": str(self.since)}
        if self.until is not None:
            out["until"] = str(self.until)
        return out

    def active_json(self) -> str:
        """The open alert as kept in the open-alert hash."""
        return json.dumps({"scope": self.scope, "rate": self.rate, "baseline": round(self.baseline, 3),
                           "factor": self.factor, "since": self.since}, separators=(",", ":"))


def rate_and_baseline(counts: Mapping[int, int], second: int, baseline_seconds: int) -> tuple[int, float]:
    """A second's count and the mean count of the ``baseline_seconds`` seconds before it (missing = 0)."""
    total = sum(counts.get(s, 0) for s in range(second - baseline_seconds, second))
    return counts.get(second, 0), total / baseline_seconds


def is_spike(rate: float, baseline: float, *, factor: float, min_eps: float) -> bool:
    return rate > factor * baseline and rate >= min_eps


def _last_hot(counts: Mapping[int, int], baseline: float, second: int, *, factor: float, min_eps: float) -> int:
    """The newest of the :data:`CLEAR_AFTER_SECONDS` seconds up to ``second`` that spikes against ``baseline``.

    ``second - CLEAR_AFTER_SECONDS`` (just out of reach) when none does.
    """
    recent = range(second, second - CLEAR_AFTER_SECONDS, -1)
    return next((s for s in recent if is_spike(counts.get(s, 0), baseline, factor=factor, min_eps=min_eps)),
                second - CLEAR_AFTER_SECONDS)


def judge_seconds(scope: str, counts: Mapping[int, int], *, first: int, last: int,
                  open_alert: Mapping[str, Any] | None, settings: Settings) -> list[Transition]:
    """Judge one scope at every second from ``first`` to ``last`` (inclusive), in order: its raises and clears."""
    window, factor, min_eps = (settings.speed_spike_baseline_seconds, settings.speed_spike_factor,
                               settings.speed_spike_min_eps)
    total = sum(counts.get(s, 0) for s in range(first - window, first))
    alert: tuple[float, int] | None = None  # (baseline it was raised with, since)
    hot = first - CLEAR_AFTER_SECONDS
    if open_alert is not None:
        alert = (float(open_alert["baseline"]), int(open_alert["since"]))
        hot = _last_hot(counts, alert[0], first - 1, factor=factor, min_eps=min_eps)
    out: list[Transition] = []
    for second in range(first, last + 1):
        rate = counts.get(second, 0)
        if alert is None:
            baseline = total / window
            if is_spike(rate, baseline, factor=factor, min_eps=min_eps):
                out.append(Transition("raised", scope, rate, baseline, factor, since=second))
                # Carry the baseline as the open-alert hash keeps it (rounded), so one long batch clears at the
                # same second as many short ones reading the alert back.
                alert = (round(baseline, 3), second)
                hot = _last_hot(counts, alert[0], second, factor=factor, min_eps=min_eps)
        elif is_spike(rate, alert[0], factor=factor, min_eps=min_eps):
            hot = second
        elif second - hot >= CLEAR_AFTER_SECONDS:
            out.append(Transition("cleared", scope, rate, alert[0], factor, since=alert[1], until=second))
            alert = None
        total += rate - counts.get(second - window, 0)
    return out


def judge(scope: str, counts: Mapping[int, int], *, second: int, open_alert: Mapping[str, Any] | None,
          settings: Settings) -> Transition | None:
    """Raise, clear or leave one scope's alert at ``second`` (see the module docs)."""
    out = judge_seconds(scope, counts, first=second, last=second, open_alert=open_alert, settings=settings)
    return out[0] if out else None


# --- sink and readers -----------------------------------------------------------------------------------------------



def _history(client: redis.Redis, keys: KeyLayout, spans: Mapping[str, tuple[int, int]]) -> dict[str, dict[int, int]]:
    """Counts per second of each scope between its two epoch seconds (inclusive), from the traffic buckets."""
    buckets = {scope: range(bucket_start(first), bucket_start(last) + 1, SPEED_BUCKET_SECONDS)
               for scope, (first, last) in spans.items()}
    pipe = client.pipeline(transaction=False)
    for scope, starts in buckets.items():
        for bucket in starts:
            pipe.hgetall(keys.traffic_bucket(scope, bucket))
    replies = iter(pipe.execute())
    out: dict[str, dict[int, int]] = {}
    for scope, starts in buckets.items():
        first, last = spans[scope]
        counts: dict[int, int] = {}
        for _ in starts:
            for field, value in next(replies).items():
                second = int(text(field))
                if first <= second <= last:
                    counts[second] = int(value)
        out[scope] = counts
    return out


@dataclass
class _Recent:
    """This process's copy of per-second counts, per scope: exact from ``since[scope]`` to ``until[scope]`` (what
    it read from the traffic buckets) and for every count it wrote after (the buckets are written by this writer
    alone, for its key prefix, query and checkpoint). It spares a micro-batch the read of every touched scope's
    last minutes from Redis; a span it does not cover is read again, which also moves ``until`` (about once a
    minute per scope)."""

    counts: dict[str, dict[int, int]]
    since: dict[str, int]
    until: dict[str, int]


_RECENT: dict[tuple[str, str, str], _Recent] = {}
"""By (key prefix, query, checkpoint id). Dropped whenever a write may not have landed."""


def _history_of(client: redis.Redis, keys: KeyLayout, recent: _Recent,
                spans: Mapping[str, tuple[int, int]]) -> dict[str, dict[int, int]]:
    """Each scope's counts over its span (and maybe more), from ``recent``; the spans it does not cover are read
    from the traffic buckets first, up to the end of the minute after the span (so the second still filling, which
    earlier batches wrote to, is in the copy too). The dicts returned are ``recent``'s own."""
    missing = {scope: (first, bucket_start(last + 1) + SPEED_BUCKET_SECONDS - 1)
               for scope, (first, last) in spans.items()
               if not (recent.since.get(scope, first + 1) <= first and last + 1 <= recent.until.get(scope, last))}
    for scope, counts in _history(client, keys, missing).items():
        recent.counts[scope] = counts
        recent.since[scope], recent.until[scope] = missing[scope]
    return {scope: recent.counts[scope] for scope in spans}


def _forget_before(recent: _Recent, horizon: int) -> None:
    """Drop the seconds before ``horizon`` (no later judgement reads them without reading them again), and the
    scopes left without any."""
    for scope in list(recent.counts):
        counts = recent.counts[scope]
        for second in [s for s in counts if s < horizon]:
            del counts[second]
        if not counts:
            del recent.counts[scope], recent.since[scope], recent.until[scope]
        else:
            recent.since[scope] = max(recent.since[scope], horizon)


def _first_unjudged(scope: str, counts: Mapping[str, Mapping[int, int]], judged: Mapping[str, int],
                    newest: int) -> int:
    """The first second of a scope this batch judges (past ``newest`` when there is none)."""
    if scope in judged:
        # From the mark, not from the batch's first second: the second that was still filling when the last
        # batch ended may get no more events, and it is judged here or never.
        first = judged[scope] + 1
    elif scope in counts:
        first = min(counts[scope])
    else:
        first = newest
    return max(first, newest - MAX_JUDGED_SECONDS + 1)


def apply_spikes(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Add the batch's per-second counts, judge every second not judged yet, and write both in one transaction.

    The transaction carries the batch id (:func:`~speed_layer.query.fenced`): a replayed batch adds nothing.
    """
    if not rows:
        return
    if not fenced(ctx):
        ctx.stats.update(alerts_raised=0, alerts_cleared=0)
        logger.info("spikes batch %d was written before: skipped", ctx.batch_id)
        return
    settings, keys, client = ctx.settings, ctx.keys, ctx.client
    counts: dict[str, dict[int, int]] = {}
    for row in rows:
        counts.setdefault(row["scope"], {})[int(row["second"])] = int(row["events"])
    newest = max(int(row["second"]) for row in rows) - 1
    active = {text(scope): json.loads(alert) for scope, alert in client.hgetall(keys.spike_active()).items()}
    judged = {text(scope): int(mark) for scope, mark in client.hgetall(keys.spike_judged()).items()}
    firsts = {scope: first for scope in sorted(set(counts) | set(active))
              if (first := _first_unjudged(scope, counts, judged, newest)) <= newest}
    # No second is judged before the layer has counted for a whole baseline: against the empty history of a
    # fresh deployment (or a catch-up run's first seconds) every busy scope would look like a spike.
    stored_since = client.get(keys.spike_counting_since())
    since = int(stored_since) if stored_since is not None else min(int(row["second"]) for row in rows)
    warm_from = since + settings.speed_spike_baseline_seconds
    lead = settings.speed_spike_baseline_seconds + CLEAR_AFTER_SECONDS
    cache_key = (keys.prefix, ctx.query_name, ctx.checkpoint_id)
    recent = _RECENT.setdefault(cache_key, _Recent({}, {}, {}))
    history = _history_of(client, keys, recent, {scope: (first - lead, newest) for scope, first in firsts.items()})
    # This batch's counts, not in Redis yet: in the copy now, so a write that fails must drop the copy.
    for scope, seconds in counts.items():
        if scope in recent.since:
            held = recent.counts[scope]
            for second, n in seconds.items():
                held[second] = held.get(second, 0) + n
    transitions: list[Transition] = []
    for scope, first in firsts.items():
        if max(first, warm_from) <= newest:
            transitions += judge_seconds(scope, history[scope], first=max(first, warm_from), last=newest,
                                         open_alert=active.get(scope), settings=settings)
    # The stream reads in event time across scopes too (stable sort: one second's entries stay in scope order).
    transitions.sort(key=lambda t: t.since if t.until is None else t.until)
    stale = [scope for scope, mark in judged.items() if mark <= newest - MAX_JUDGED_SECONDS and scope not in firsts]

    # One transaction: the judged marks land with the alerts they account for, or neither does.
    pipe = client.pipeline(transaction=True)
    for scope, seconds in counts.items():
        by_bucket: dict[int, dict[str, int]] = {}
        for s, n in seconds.items():
            by_bucket.setdefault(bucket_start(s), {})[str(s)] = n
        for bucket, mapping in by_bucket.items():
            key = keys.traffic_bucket(scope, bucket)
            for field, n in mapping.items():
                pipe.hincrby(key, field, n)
            pipe.expire(key, TRAFFIC_TTL_SECONDS)
    raise_alert, clear_alert = client.register_script(_RAISE_LUA), client.register_script(_CLEAR_LUA)
    applied_from = len(pipe)
    for t in transitions:
        entry = [item for pair in t.fields().items() for item in pair]
        if t.type == "raised":
            raise_alert(keys=[keys.spike_active(), keys.spike_alerts()],
                        args=[t.scope, t.active_json(), ALERTS_MAX_ENTRIES, *entry], client=pipe)
        else:
            clear_alert(keys=[keys.spike_active(), keys.spike_alerts()],
                        args=[t.scope, ALERTS_MAX_ENTRIES, *entry], client=pipe)
    if firsts:
        pipe.hset(keys.spike_judged(), mapping=dict.fromkeys(firsts, newest))
    if stale:
        pipe.hdel(keys.spike_judged(), *stale)
    pipe.set(keys.spike_counting_since(), since, nx=True)
    commit_fence(ctx, pipe)
    for key in (keys.spike_alerts(), keys.spike_active(), keys.spike_judged(), keys.spike_counting_since()):
        pipe.expire(key, ALERTS_TTL_SECONDS)
    try:
        replies = pipe.execute()
    except BaseException:
        _RECENT.pop(cache_key, None)  # the counts in the copy may not be in Redis
        raise
    # A later batch judges from its scopes' unjudged seconds less the lead: nothing before that is read again.
    _forget_before(recent, min([*firsts.values(), newest]) - lead)
    applied = replies[applied_from: applied_from + len(transitions)]
    done = [t for t, changed in zip(transitions, applied, strict=True) if changed]
    ctx.stats["alerts_raised"] = sum(1 for t in done if t.type == "raised")
    ctx.stats["alerts_cleared"] = sum(1 for t in done if t.type == "cleared")
    for t in done:
        logger.warning("traffic spike %s on %s: %d events/s, baseline %.2f", t.type, t.scope, t.rate, t.baseline)





def read_traffic(client: redis.Redis, keys: KeyLayout, scope: str, *, first: int, last: int) -> dict[int, int]:
    """Events per second of one scope between two epoch seconds (inclusive); seconds without events are left out."""
    return _history(client, keys, {scope: (first, last)})[scope]


QUERY = shared_view(
    name="spikes",
    description="Events per second per topic kind and per title; raises and clears traffic-spike alerts.",
    topics=(TopicKind.PLAYBACK, TopicKind.INTERACTIONS, TopicKind.CATALOG, TopicKind.DERIVED),
    contributions=CONTRIBUTIONS,
    apply=apply_spikes,
    late_cut=True,
)

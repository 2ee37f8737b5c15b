"""Concurrency view: the transform keeps only what the view needs; the view is the ground truth's rule.

Contract: ``CONTRIBUTIONS`` keeps heartbeats, ``play_end``, fatal errors and ``user_upsert`` plan records
(late ones too: there is no watermark), one row each. ``account_update`` computes over-limit sessions exactly
as the simulator's ``concurrency_violations`` (first to last heartbeat, inclusive), "active now" with the
heartbeat timeout and explicit ends, and gives the same answer whatever batches the events came in.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from simulator import SimulationConfig, simulate
from simulator.sessions import epoch_ms
from simulator.truth import compute_truth
from speed_layer.concurrency import QUERY, AccountStreams, account_update, reduce_batch
from warehouse_models.events import parse_timestamp
from warehouse_models.metrics.concurrency import over_limit_sessions

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = int(START.timestamp()) * 1000
TIMEOUT_MS = 30_000


def test_query_is_stateless_and_reads_playback_and_catalog():
    assert [t.value for t in QUERY.topics] == ["playback", "catalog"]
    assert not QUERY.stateful


def test_over_limit_follows_the_truth_rule():
    # limit 1: b starts while a streams; c starts exactly at a's last heartbeat (inclusive) while b streams too;
    # d starts after everyone stopped.
    intervals = [(0, 50, "a"), (20, 90, "b"), (50, 60, "c"), (200, 210, "d")]
    assert over_limit_sessions(intervals, 1) == {"b": 20, "c": 50}
    assert over_limit_sessions(intervals, 2) == {"c": 50}
    assert over_limit_sessions(intervals, 3) == {}
    assert over_limit_sessions(intervals, None) == {}


def _state(limit: int | None, sessions: Mapping[str, tuple[int, int]], *, ended: Mapping[str, int] | None = None,
           over: Mapping[str, int] | None = None) -> AccountStreams:
    return AccountStreams(limit, {s: v[0] for s, v in sessions.items()}, {s: v[1] for s, v in sessions.items()},
                          dict(ended or {}), dict(over or {}))


def test_view_marks_the_second_of_two_overlapping_sessions_and_allows_a_later_third():
    both = _state(1, {"s1": (T0, T0 + 60_000), "s2": (T0 + 20_000, T0 + 70_000)})
    update = account_update(both, timeout_ms=TIMEOUT_MS)
    assert update.view == {"limit": 1, "active": ["s1", "s2"], "over_limit": ["s2"], "as_of_ms": T0 + 70_000}
    assert update.over_add == {"s2": T0 + 20_000} and update.over_remove == []

    # s3 starts 50 s after both stopped: not over, and the only active stream; s2 stays in the history.
    later = _state(1, {"s1": (T0, T0 + 60_000), "s2": (T0 + 20_000, T0 + 70_000),
                       "s3": (T0 + 120_000, T0 + 130_000)}, over={"s2": T0 + 20_000})
    update = account_update(later, timeout_ms=TIMEOUT_MS)
    assert update.view == {"limit": 1, "active": ["s3"], "over_limit": [], "as_of_ms": T0 + 130_000}
    assert update.over_add == {"s2": T0 + 20_000} and update.over_remove == []


def test_active_uses_the_timeout_and_explicit_ends_and_lists_newest_over_first():
    state = _state(1, {"a": (T0, T0 + 100_000), "b": (T0 + 10_000, T0 + 95_000), "c": (T0 + 20_000, T0 + 69_000),
                       "d": (T0 + 30_000, T0 + 70_000), "e": (T0 + 40_000, T0 + 100_000)},
                   ended={"e": T0 + 100_500})
    update = account_update(state, timeout_ms=TIMEOUT_MS)
    # As of 100.5 s: the last heartbeats of c and d are more than 30 s old, and e ended explicitly.
    assert update.view == {"limit": 1, "active": ["a", "b"], "over_limit": ["b"], "as_of_ms": T0 + 100_500}
    assert set(update.over_add) == {"b", "c", "d", "e"}


def test_unknown_limit_puts_nobody_over_and_clears_stale_verdicts():
    state = _state(None, {"s1": (T0, T0 + 60_000), "s2": (T0 + 20_000, T0 + 70_000)}, over={"s2": T0 + 20_000})
    update = account_update(state, timeout_ms=TIMEOUT_MS)
    assert update.view == {"limit": None, "active": ["s1", "s2"], "over_limit": [], "as_of_ms": T0 + 70_000}
    assert update.over_add == {} and update.over_remove == ["s2"]


def test_a_late_earlier_heartbeat_moves_the_verdict_to_the_other_session():
    # Seen so far: a from 60 s, b from 70 s -> b over. A late heartbeat of b at 50 s makes b the first.
    early = account_update(_state(1, {"a": (T0 + 60_000, T0 + 80_000), "b": (T0 + 70_000, T0 + 80_000)}),
                           timeout_ms=TIMEOUT_MS)
    assert early.over_add == {"b": T0 + 70_000}
    late = account_update(_state(1, {"a": (T0 + 60_000, T0 + 80_000), "b": (T0 + 50_000, T0 + 80_000)},
                                 over=early.over_add), timeout_ms=TIMEOUT_MS)
    assert late.over_add == {"a": T0 + 60_000} and late.over_remove == ["b"]
    assert late.view is not None and late.view["over_limit"] == ["a"]


def test_sessions_beyond_the_retention_are_forgotten_and_their_verdicts_kept():
    hour = 3_600_000
    state = _state(1, {"old1": (T0, T0 + 60_000), "old2": (T0 + 30_000, T0 + 90_000),
                       "new": (T0 + 7 * hour, T0 + 7 * hour + 10_000)},
                   ended={"old1": T0 + 61_000}, over={"old2": T0 + 30_000})
    update = account_update(state, timeout_ms=TIMEOUT_MS, retention_ms=6 * hour)
    assert update.forget_sessions == ["old1", "old2"]
    assert update.forget_ended_before_ms == T0 + hour + 10_000
    assert update.over_add == {} and update.over_remove == []
    assert update.view == {"limit": 1, "active": ["new"], "over_limit": [], "as_of_ms": T0 + 7 * hour + 10_000}


def test_no_streams_no_view():
    update = account_update(_state(2, {}), timeout_ms=TIMEOUT_MS)
    assert update.view is None and update.over_add == {} and update.forget_sessions == []


def test_reduce_batch_is_order_free():
    rows = [
        {"account_id": "acc-1", "session_id": None, "event_type": "user_upsert", "event_time_ms": 5, "max_streams": 2},
        {"account_id": "acc-1", "session_id": None, "event_type": "user_upsert", "event_time_ms": 9, "max_streams": 1},
        {"account_id": "acc-1", "session_id": "s", "event_type": "heartbeat", "event_time_ms": 30, "max_streams": None},
        {"account_id": "acc-1", "session_id": "s", "event_type": "heartbeat", "event_time_ms": 10, "max_streams": None},
        {"account_id": "acc-1", "session_id": "s", "event_type": "heartbeat", "event_time_ms": 20, "max_streams": None},
        {"account_id": "acc-2", "session_id": "t", "event_type": "play_end", "event_time_ms": 40, "max_streams": None},
        {"account_id": "acc-2", "session_id": "t", "event_type": "error", "event_time_ms": 35, "max_streams": None},
    ]
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        reduced = reduce_batch(shuffled)
        assert reduced.limits == {"acc-1": (9, 1)}
        assert reduced.starts == {"acc-1": {"s": 10}} and reduced.lasts == {"acc-1": {"s": 30}}
        assert reduced.ends == {"acc-2": {"t": 40}}
        assert reduced.accounts == ["acc-1", "acc-2"]


class _Store:
    """What the writer keeps in Redis, modelled with dicts (ZADD GT/LT, the plan-limit compare-and-set)."""

    def __init__(self) -> None:
        self.limits: dict[str, tuple[int, int]] = {}
        self.starts: dict[str, dict[str, int]] = {}
        self.lasts: dict[str, dict[str, int]] = {}
        self.ended: dict[str, dict[str, int]] = {}
        self.over: dict[str, dict[str, int]] = {}
        self.views: dict[str, dict[str, Any]] = {}

    def apply(self, rows: Iterable[Mapping[str, Any]]) -> None:
        batch = reduce_batch(rows)
        for account, record in batch.limits.items():
            self.limits[account] = max(self.limits.get(account, record), record)
        for target, source, pick in ((self.starts, batch.starts, min), (self.lasts, batch.lasts, max),
                                     (self.ended, batch.ends, max)):
            for account, sessions in source.items():
                stored = target.setdefault(account, {})
                for session, ms in sessions.items():
                    stored[session] = pick(stored.get(session, ms), ms)
        for account in batch.accounts:
            limit = self.limits[account][1] if account in self.limits else None
            state = AccountStreams(limit, self.starts.get(account, {}), self.lasts.get(account, {}),
                                   self.ended.get(account, {}), self.over.get(account, {}))
            update = account_update(state, timeout_ms=TIMEOUT_MS)
            for session in update.forget_sessions:
                self.starts[account].pop(session, None)
                self.lasts[account].pop(session, None)
            over = self.over.setdefault(account, {})
            over.update(update.over_add)
            for session in update.over_remove:
                over.pop(session)
            if update.view is not None:
                self.views[account] = update.view


def _wire_rows(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What ``CONTRIBUTIONS`` yields for simulated events, built in Python (the Spark test is above)."""
    rows = []
    for e in events:
        kind = e["event_type"]
        if kind in ("heartbeat", "play_end", "user_upsert") or (kind == "error" and e.get("error_fatal")):
            ms = epoch_ms(parse_timestamp(e["event_timestamp"]))
            rows.append({"account_id": e["account_id"], "session_id": e.get("session_id"), "event_type": kind,
                         "event_time_ms": ms, "max_streams": e.get("max_streams")})
    return rows


def test_over_limit_history_matches_the_simulators_truth_for_any_batching():
    config = SimulationConfig(start=START, duration=timedelta(minutes=40), seed=5, users=200, titles=40, channels=4,
                              sessions_per_user_hour=2.0, sharer_share=0.3)
    events = list(simulate(config))
    truth = {account: sorted(v["over_limit_sessions"])
             for account, v in compute_truth(events)["concurrency_violations"].items()}
    assert len(truth) > 10
    rows = _wire_rows(events)
    finals = []
    for seed in range(4):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        cuts = sorted(random.Random(seed).sample(range(1, len(shuffled)), 30))
        store = _Store()
        for lo, hi in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
            store.apply(shuffled[lo:hi])
        assert {a: sorted(s) for a, s in store.over.items() if s} == truth
        finals.append(json.dumps([store.over, store.views], sort_keys=True))
    assert len(set(finals)) == 1


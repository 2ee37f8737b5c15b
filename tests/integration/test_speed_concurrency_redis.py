"""Concurrency writer against the real Redis: exact contents, idempotent replays, order independence, TTLs.

Contract: with a plan limit of 1, the second of two overlapping sessions is over the limit and stays recorded;
a session that starts after both stopped heartbeating for longer than the timeout may play; the same events
in other batches and orders leave Redis identical; a replayed batch changes nothing; every key has a TTL; and
on a simulated stream the over-limit history is the simulator's ground truth.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from serving.views.speed import count_live_streams, read_concurrency
from simulator import SimulationConfig, simulate
from simulator.sessions import epoch_ms
from simulator.truth import compute_truth
from speed_layer.concurrency import QUERY
from speed_layer.query import SinkContext
from tests.speed_support import clear_prefix, sink_context_fixture, snapshot, write_events
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import CONCURRENCY_TTL_SECONDS

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = epoch_ms(START)


def _at(seconds: float) -> str:
    return format_timestamp(START + timedelta(seconds=seconds))


def _heartbeats(session: str, seconds: Sequence[int]) -> list[dict[str, Any]]:
    return [{"event_id": f"{session}-hb-{s}", "schema_version": 1, "event_type": "heartbeat",
             "event_timestamp": _at(s), "account_id": "acc-1", "user_id": "usr-1", "device_type": "tv",
             "session_id": session, "content_id": "vod-1", "position_seconds": float(s), "player_state": "playing"}
            for s in seconds]


PLAN = {"event_id": "u-1", "schema_version": 1, "event_type": "user_upsert", "event_timestamp": _at(0),
        "account_id": "acc-1", "user_id": "usr-1", "user_name": "Ann", "subscription_type": "basic",
        "max_streams": 1}
S1 = _heartbeats("s1", range(10, 61, 10))
S1_END = {"event_id": "s1-end", "schema_version": 1, "event_type": "play_end", "event_timestamp": _at(65),
          "account_id": "acc-1", "user_id": "usr-1", "device_type": "tv", "session_id": "s1",
          "content_id": "vod-1", "position_seconds": 65.0}
S2 = _heartbeats("s2", range(30, 91, 10))
S3 = _heartbeats("s3", [140, 150])  # 50 s after s2's last heartbeat: longer than the 30 s timeout


ctx = sink_context_fixture(QUERY.name)


def _snapshot(ctx: SinkContext) -> dict[str, Any]:
    """Every key under the test's prefix (prefix stripped) with its value."""
    return snapshot(ctx, strip=ctx.keys.prefix, score=int, string=json.loads)


def _ttls(ctx: SinkContext) -> dict[str, int]:
    return {raw.decode(): ctx.client.ttl(raw) for raw in ctx.client.scan_iter(match=ctx.keys.pattern())}


def test_second_overlapping_session_is_over_and_a_later_third_is_not(spark, ctx):
    write_events(spark, QUERY, ctx, [PLAN, *S1, *S2], batch_id=0)
    first = _snapshot(ctx)
    assert first == {
        ":speed:plan_limits": {"acc-1": "1"},
        ":speed:plan_limits:at": {"acc-1": str(T0)},
        ":speed:streams:acc-1": {"s1": T0 + 60_000, "s2": T0 + 90_000},
        ":speed:stream_starts:acc-1": {"s1": T0 + 10_000, "s2": T0 + 30_000},
        ":speed:overlimit:acc-1": {"s2": T0 + 30_000},
        ":speed:concurrency:acc-1": {"limit": 1, "active": ["s1", "s2"], "over_limit": ["s2"],
                                     "as_of_ms": T0 + 90_000},
        ":speed:live_sessions": {"acc-1/s1": T0 + 60_000, "acc-1/s2": T0 + 90_000},
    }

    write_events(spark, QUERY, ctx, [PLAN, *S1, *S2], batch_id=0)  # the same batch again, as after a crash
    assert _snapshot(ctx) == first

    write_events(spark, QUERY, ctx, [S1_END, *S3], batch_id=1)
    final = _snapshot(ctx)
    assert final == {
        **first,
        ":speed:streams:acc-1": {"s1": T0 + 60_000, "s2": T0 + 90_000, "s3": T0 + 150_000},
        ":speed:stream_starts:acc-1": {"s1": T0 + 10_000, "s2": T0 + 30_000, "s3": T0 + 140_000},
        ":speed:streams_ended:acc-1": {"s1": T0 + 65_000},
        ":speed:concurrency:acc-1": {"limit": 1, "active": ["s3"], "over_limit": [], "as_of_ms": T0 + 150_000},
        # s1 ended explicitly; s2 went quiet (it stays until the retention, but is not counted as playing).
        ":speed:live_sessions": {"acc-1/s2": T0 + 90_000, "acc-1/s3": T0 + 150_000},
    }
    assert count_live_streams(ctx.client, ctx.keys, heartbeat_timeout_seconds=30) == (1, START + timedelta(
        seconds=150))
    assert read_concurrency(ctx.client, ctx.keys, "acc-1") == final[":speed:concurrency:acc-1"]

    ttls = _ttls(ctx)
    assert len(ttls) == len(final)
    assert all(0 < ttl <= CONCURRENCY_TTL_SECONDS for ttl in ttls.values()), ttls


def test_the_same_events_in_other_batches_and_orders_leave_the_same_state(spark, ctx):
    write_events(spark, QUERY, ctx, [PLAN, *S1, *S2], batch_id=0)
    write_events(spark, QUERY, ctx, [S1_END, *S3], batch_id=1)
    in_order = _snapshot(ctx)
    clear_prefix(ctx.client, ctx.keys.pattern())

    # The newest events first, the plan record and the early heartbeats of both sessions late.
    batches = [[*S3, *S2[3:]], [S1_END, *S1[3:]], [*S2[:3], *reversed(S1[:3]), PLAN]]
    for batch_id, events in enumerate(batches):
        write_events(spark, QUERY, ctx, events, batch_id=batch_id)
    assert _snapshot(ctx) == in_order

    # A replay of the last batch changes nothing.
    write_events(spark, QUERY, ctx, batches[-1], batch_id=len(batches) - 1)
    assert _snapshot(ctx) == in_order


def test_limit_unknown_until_the_plan_record_arrives(spark, ctx):
    write_events(spark, QUERY, ctx, [*S1, *S2], batch_id=0)
    assert read_concurrency(ctx.client, ctx.keys, "acc-1") == {"limit": None, "active": ["s1", "s2"],
                                                               "over_limit": [], "as_of_ms": T0 + 90_000}
    assert ctx.client.exists(ctx.keys.account_over_limit("acc-1")) == 0
    write_events(spark, QUERY, ctx, [PLAN], batch_id=1)
    assert read_concurrency(ctx.client, ctx.keys, "acc-1")["over_limit"] == ["s2"]


def test_over_limit_history_of_a_simulated_stream_is_the_truth(spark, ctx):
    config = SimulationConfig(start=START, duration=timedelta(minutes=20), seed=5, users=100, titles=20, channels=2,
                              sessions_per_user_hour=2.0, sharer_share=0.3)
    events = list(simulate(config))
    truth = compute_truth(events)["concurrency_violations"]
    assert truth
    shuffled = events[:]
    random.Random(1).shuffle(shuffled)
    third = len(shuffled) // 3
    for batch_id, lo in enumerate(range(0, len(shuffled), third)):
        write_events(spark, QUERY, ctx, shuffled[lo:lo + third], batch_id=batch_id)
    accounts = {e["account_id"] for e in events if e["event_type"] == "heartbeat"}
    found = {}
    for account in accounts:
        sessions = [m.decode() for m in ctx.client.zrange(ctx.keys.account_over_limit(account), 0, -1)]
        if sessions:
            found[account] = sorted(sessions)
    assert found == {account: sorted(v["over_limit_sessions"]) for account, v in truth.items()}

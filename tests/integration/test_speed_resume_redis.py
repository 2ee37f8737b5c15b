"""Resume writer against the real Redis: newest position by event time, whatever the batches and their order.

Contract: ``resume_position(user)`` holds ``"<event time ms>:<position>"`` per VOD title, the newest by event
time (equal times: the larger position); a late older event never moves it back; a replayed batch and another
split or order of the same events leave Redis identical; the key has a TTL; ``read_resume`` reads it back.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from serving.views.speed import read_resume
from simulator.sessions import epoch_ms
from speed_layer.query import SinkContext
from speed_layer.resume import QUERY
from tests.speed_support import sink_context_fixture, snapshot, write_events
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import RESUME_TTL_SECONDS

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = epoch_ms(START)


def _event(event_id: str, event_type: str, seconds: float, position: float, *, user: str = "usr-1",
           content: str = "vod-1", live: bool = False, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "schema_version": 1, "event_type": event_type,
            "event_timestamp": format_timestamp(START + timedelta(seconds=seconds)), "account_id": "acc-1",
            "user_id": user, "device_type": "tv", "session_id": f"ses-{user}-{content}", "content_id": content,
            "is_live": live, "position_seconds": position, **fields}


EVENTS = [
    _event("e-1", "heartbeat", 10, 10.0, player_state="playing"),
    _event("e-2", "seek", 15, 600.0, seek_from_seconds=14.0),
    _event("e-3", "heartbeat", 20, 605.0, player_state="playing"),
    _event("e-4", "pause", 25, 610.0),
    _event("e-5", "heartbeat", 30, 610.0, player_state="paused"),
    _event("e-6", "heartbeat", 10, 40.0, player_state="playing", content="vod-2"),
    _event("e-7", "seek", 10, 35.0, seek_from_seconds=40.0, content="vod-2"),  # same time: larger position wins
    _event("e-8", "heartbeat", 50, 900.0, player_state="playing", content="live-1", live=True),
    _event("e-9", "play_end", 40, 77.0, user="usr-2"),
]

EXPECTED = {
    "usr-1": {"vod-1": f"{T0 + 30_000}:610.0", "vod-2": f"{T0 + 10_000}:40.0"},
    "usr-2": {"vod-1": f"{T0 + 40_000}:77.0"},
}


ctx = sink_context_fixture(QUERY.name)


def _snapshot(ctx: SinkContext) -> dict[str, dict[str, str]]:
    """User -> the user's resume hash; every key under the test's prefix must be a hash."""
    return snapshot(ctx, strip=ctx.keys.resume_position(""), only="hash")


def test_newest_position_wins_and_a_replay_changes_nothing(spark, ctx):
    write_events(spark, QUERY, ctx, EVENTS, batch_id=0)
    assert _snapshot(ctx) == EXPECTED
    write_events(spark, QUERY, ctx, EVENTS, batch_id=0)
    assert _snapshot(ctx) == EXPECTED

    for user in EXPECTED:
        ttl = ctx.client.ttl(ctx.keys.resume_position(user))
        assert 0 < ttl <= RESUME_TTL_SECONDS

    assert read_resume(ctx.client, ctx.keys, "usr-1", "vod-1") == {
        "position_seconds": 610.0, "event_timestamp": START + timedelta(seconds=30)}
    assert read_resume(ctx.client, ctx.keys, "usr-1", "live-1") is None
    assert read_resume(ctx.client, ctx.keys, "usr-1") == {
        "vod-1": {"position_seconds": 610.0, "event_timestamp": START + timedelta(seconds=30)},
        "vod-2": {"position_seconds": 40.0, "event_timestamp": START + timedelta(seconds=10)},
    }
    assert read_resume(ctx.client, ctx.keys, "usr-9") == {}


def test_late_older_events_never_move_the_position_back(spark, ctx):
    # Newest first, then the older ones in later batches, the tie split across two batches.
    batches = [[EVENTS[4], EVENTS[8], EVENTS[6]], [EVENTS[2], EVENTS[5], EVENTS[7]], [EVENTS[0], EVENTS[3]],
               [EVENTS[1]]]
    for batch_id, events in enumerate(batches):
        write_events(spark, QUERY, ctx, events, batch_id=batch_id)
    assert _snapshot(ctx) == EXPECTED

"""Recent items writer against the real Redis: newest RECENT_ITEMS_MAX titles, whatever the batches and order.

Contract: ``recent_items(user)`` maps content id -> the newest watching event time (ms), trimmed to the newest
``RECENT_ITEMS_MAX``; another split or order of the same events (late ones in later batches) and a replayed
batch leave Redis identical; the key has a TTL; ``read_recent`` lists titles newest first with UTC times.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from serving.views.speed import read_recent
from simulator.sessions import epoch_ms
from speed_layer.query import SinkContext
from speed_layer.recent import QUERY
from tests.speed_support import clear_prefix, sink_context_fixture, snapshot, write_events
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import RECENT_ITEMS_MAX, RECENT_ITEMS_TTL_SECONDS

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = epoch_ms(START)
TITLES = RECENT_ITEMS_MAX + 5


def _watch(n: int, seconds: int, content: str, *, user: str = "usr-1", state: str = "playing") -> dict[str, Any]:
    return {"event_id": f"e-{n}", "schema_version": 1, "event_type": "heartbeat",
            "event_timestamp": format_timestamp(START + timedelta(seconds=seconds)), "account_id": "acc-1",
            "user_id": user, "device_type": "tv", "session_id": f"ses-{content}", "content_id": content,
            "position_seconds": 1.0, "player_state": state}


# One title per 10 s for usr-1, then vod-000 again at the end (so the oldest title is the newest again),
# a paused heartbeat that must not count, and one title for usr-2.
EVENTS = [
    *[_watch(i, 10 * i, f"vod-{i:03d}") for i in range(TITLES)],
    _watch(900, 10 * TITLES, "vod-000"),
    _watch(901, 10 * TITLES + 5, "vod-001", state="paused"),
    _watch(902, 7, "vod-777", user="usr-2"),
]

# usr-1: vod-000 at the newest time, then the newest RECENT_ITEMS_MAX - 1 of the others.
EXPECTED = {
    "usr-1": {"vod-000": T0 + 10_000 * TITLES,
              **{f"vod-{i:03d}": T0 + 10_000 * i for i in range(TITLES - RECENT_ITEMS_MAX + 1, TITLES)}},
    "usr-2": {"vod-777": T0 + 7_000},
}


ctx = sink_context_fixture(QUERY.name)


def _snapshot(ctx: SinkContext) -> dict[str, dict[str, int]]:
    """User -> the user's recent items with their times (ms)."""
    return snapshot(ctx, strip=ctx.keys.recent_items(""), score=int)


def test_newest_titles_kept_and_a_replay_changes_nothing(spark, ctx):
    write_events(spark, QUERY, ctx, EVENTS, batch_id=0)
    assert len(EXPECTED["usr-1"]) == RECENT_ITEMS_MAX
    assert _snapshot(ctx) == EXPECTED
    write_events(spark, QUERY, ctx, EVENTS, batch_id=0)
    assert _snapshot(ctx) == EXPECTED

    for user in EXPECTED:
        ttl = ctx.client.ttl(ctx.keys.recent_items(user))
        assert 0 < ttl <= RECENT_ITEMS_TTL_SECONDS

    assert read_recent(ctx.client, ctx.keys, "usr-1", n=3) == [
        ("vod-000", START + timedelta(seconds=10 * TITLES)),
        (f"vod-{TITLES - 1:03d}", START + timedelta(seconds=10 * (TITLES - 1))),
        (f"vod-{TITLES - 2:03d}", START + timedelta(seconds=10 * (TITLES - 2))),
    ]
    assert read_recent(ctx.client, ctx.keys, "usr-2") == [("vod-777", START + timedelta(seconds=7))]
    assert read_recent(ctx.client, ctx.keys, "usr-9") == []


def test_other_batches_and_orders_end_the_same(spark, ctx):
    # Newest first, with the oldest titles (already trimmed away by then) arriving late in later batches.
    newest_first = sorted(EVENTS, key=lambda e: e["event_timestamp"], reverse=True)
    batches = [newest_first[:20], newest_first[20:40], newest_first[40:]]
    for batch_id, events in enumerate(batches):
        write_events(spark, QUERY, ctx, events, batch_id=batch_id)
    assert _snapshot(ctx) == EXPECTED

    clear_prefix(ctx.client, ctx.keys.pattern())
    shuffled = EVENTS[:]
    random.Random(3).shuffle(shuffled)
    for batch_id, lo in enumerate(range(0, len(shuffled), 7)):
        write_events(spark, QUERY, ctx, shuffled[lo:lo + 7], batch_id=batch_id)
    assert _snapshot(ctx) == EXPECTED

"""The trending writer against the real Redis: minute sets, the distinct count over the window, replays, TTLs.

Contract: each (kind, title, minute) is a set of user ids (SADD); each kind's ranking holds the distinct viewers
of every title over the trending window ending at the newest minute (a user active in several minutes counts
once), with the window beside it; a late batch never moves the window back; writing the same micro-batch again
leaves everything but the processing-time ``computed_at`` identical; every key has a TTL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from speed_layer.query import SinkContext
from speed_layer.source import events_frame
from speed_layer.trending import read_trending, trending_rows, write_trending
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import TRENDING_TTL_SECONDS
from warehouse_models.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _epoch(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp())


def _heartbeat(user: str, content: str, seconds: float, *, live: bool = False) -> dict[str, Any]:
    return {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": "heartbeat",
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{user}",
        "user_id": user, "device_type": "tv", "session_id": f"ses-{user}-{content}", "content_id": content,
        "is_live": live, "position_seconds": seconds, "player_state": "playing",
    }


@pytest.fixture
def ctx(redis_service, isolated: Settings) -> Iterator[SinkContext]:
    client = isolated.redis_client()
    try:
        yield SinkContext(settings=isolated, client=client, keys=isolated.keys, query_name="trending", batch_id=5)
    finally:
        stale = list(client.scan_iter(match=isolated.keys.pattern()))
        if stale:
            client.delete(*stale)
        client.close()


def _dump(ctx: SinkContext) -> dict[str, Any]:
    """Every key of the test's prefix with its value as plain Python (sets, {member: score}, {field: value})."""
    client, out = ctx.client, {}
    for raw in client.scan_iter(match=ctx.keys.pattern()):
        key, kind = raw.decode(), client.type(raw).decode()
        if kind == "set":
            out[key] = {m.decode() for m in client.smembers(raw)}
        elif kind == "zset":
            out[key] = {m.decode(): s for m, s in client.zrange(raw, 0, -1, withscores=True)}
        else:
            out[key] = {f.decode(): v.decode() for f, v in client.hgetall(raw).items()}
    return out


EVENTS = [
    # Three users watch vod-A, u1 in two minutes; one user watches vod-B in two minutes; one a live channel.
    _heartbeat("u1", "vod-A", 0),
    _heartbeat("u1", "vod-A", 70),
    _heartbeat("u2", "vod-A", 130),
    _heartbeat("u3", "vod-A", 200),
    _heartbeat("u4", "vod-B", 10),
    _heartbeat("u4", "vod-B", 80),
    _heartbeat("u5", "live-1", 50, live=True),
]


def _without_computed_at(dump: dict[str, Any]) -> dict[str, Any]:
    return {k: {f: v for f, v in value.items() if f != "computed_at"} if isinstance(value, dict) else value
            for k, value in dump.items()}


def test_distinct_viewers_over_the_window_and_a_replay_changes_nothing(spark, ctx):
    batch = trending_rows(events_frame(spark, EVENTS), ctx.settings)
    before = time.time()
    write_trending(batch, ctx)
    keys = ctx.keys
    window = {"start": str(_epoch(240 - 600)), "end": str(_epoch(240))}
    expected = {
        keys.trending_viewers("vod", "vod-A", _epoch(0)): {"u1"},
        keys.trending_viewers("vod", "vod-A", _epoch(60)): {"u1"},
        keys.trending_viewers("vod", "vod-A", _epoch(120)): {"u2"},
        keys.trending_viewers("vod", "vod-A", _epoch(180)): {"u3"},
        keys.trending_viewers("vod", "vod-B", _epoch(0)): {"u4"},
        keys.trending_viewers("vod", "vod-B", _epoch(60)): {"u4"},
        keys.trending_viewers("live", "live-1", _epoch(0)): {"u5"},
        keys.trending_titles("vod", _epoch(0)): {"vod-A", "vod-B"},
        keys.trending_titles("vod", _epoch(60)): {"vod-A", "vod-B"},
        keys.trending_titles("vod", _epoch(120)): {"vod-A"},
        keys.trending_titles("vod", _epoch(180)): {"vod-A"},
        keys.trending_titles("live", _epoch(0)): {"live-1"},
        keys.trending("vod"): {"vod-A": 3.0, "vod-B": 1.0},
        keys.trending("live"): {"live-1": 1.0},
        keys.trending_window("vod"): window,
        keys.trending_window("live"): window,
    }
    first = _dump(ctx)
    assert _without_computed_at(first) == expected
    computed_at = float(first[keys.trending_window("vod")]["computed_at"])
    assert before <= computed_at <= time.time()

    write_trending(batch, ctx)
    again = _dump(ctx)
    assert _without_computed_at(again) == expected
    assert float(again[keys.trending_window("vod")]["computed_at"]) >= computed_at
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= TRENDING_TTL_SECONDS
    assert read_trending(ctx.client, keys, "vod") == [("vod-A", 3), ("vod-B", 1)]
    assert read_trending(ctx.client, keys, "vod", n=1) == [("vod-A", 3)]
    assert read_trending(ctx.client, keys, "live") == [("live-1", 1)]


def test_a_late_batch_counts_without_moving_the_window_back(spark, ctx):
    write_trending(trending_rows(events_frame(spark, EVENTS), ctx.settings), ctx)
    write_trending(trending_rows(events_frame(spark, [_heartbeat("u6", "vod-B", 30)]), ctx.settings), ctx)
    assert read_trending(ctx.client, ctx.keys, "vod") == [("vod-A", 3), ("vod-B", 2)]
    assert ctx.client.hget(ctx.keys.trending_window("vod"), "end") == str(_epoch(240)).encode()
    # The live ranking was not touched by a batch without live events.
    assert read_trending(ctx.client, ctx.keys, "live") == [("live-1", 1)]


def test_the_window_slides_and_titles_without_viewers_in_it_leave_the_ranking(spark, ctx):
    write_trending(trending_rows(events_frame(spark, EVENTS), ctx.settings), ctx)
    write_trending(trending_rows(events_frame(spark, [_heartbeat("u7", "vod-C", 720)]), ctx.settings), ctx)
    # The window is now [12:03, 12:13): only u3's minute of vod-A is left of the first batch.
    assert read_trending(ctx.client, ctx.keys, "vod") == [("vod-C", 1), ("vod-A", 1)]
    assert ctx.client.hmget(ctx.keys.trending_window("vod"), ["start", "end"]) == [
        str(_epoch(180)).encode(), str(_epoch(780)).encode()]

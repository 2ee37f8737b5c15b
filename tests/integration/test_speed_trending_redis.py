"""The trending writer against the real Redis: minute sets, the distinct count over the window, replays, TTLs.

Contract: each (kind, title) keeps its viewers' newest minutes (ZADD GT); each kind's ranking holds the distinct
viewers of every title over the trending window ending at the newest minute (a user active in several minutes
counts once), with the window beside it; a late batch never moves the window back; writing the same micro-batch again
leaves everything but the processing-time ``computed_at`` identical; every key has a TTL. Per country the same
holds in the country's scope, over the kind's window; a country left without viewers loses its ranking.
"""

from __future__ import annotations

import time
from typing import Any

from speed_layer.source import events_frame
from speed_layer.trending import QUERY
from tests.speed_support import epoch, playback, sink_context_fixture, snapshot
from warehouse_models.metrics.trending import read_trending
from warehouse_models.redis_keys import TRENDING_TTL_SECONDS


def _heartbeat(user: str, content: str, seconds: float, *, live: bool = False) -> dict[str, Any]:
    return playback("heartbeat", user, content, seconds, is_live=live, position_seconds=seconds,
                    player_state="playing")


ctx = sink_context_fixture("trending", batch_id=5)


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
    batch = events_frame(spark, EVENTS)
    before = time.time()
    QUERY.write(batch, ctx)
    keys = ctx.keys
    window = {"start": str(epoch(240 - 600)), "end": str(epoch(240))}
    expected = {
        # Each viewer's newest minute per title; each title's newest minute.
        keys.trending_viewers("vod", "vod-A"): {"u1": epoch(60), "u2": epoch(120), "u3": epoch(180)},
        keys.trending_viewers("vod", "vod-B"): {"u4": epoch(60)},
        keys.trending_viewers("live", "live-1"): {"u5": epoch(0)},
        keys.trending_titles("vod"): {"vod-A": epoch(180), "vod-B": epoch(60)},
        keys.trending_titles("live"): {"live-1": epoch(0)},
        keys.trending("vod"): {"vod-A": 3.0, "vod-B": 1.0},
        keys.trending("live"): {"live-1": 1.0},
        keys.trending_window("vod"): window,
        keys.trending_window("live"): window,
    }
    first = snapshot(ctx)
    assert _without_computed_at(first) == expected
    computed_at = float(first[keys.trending_window("vod")]["computed_at"])
    assert before <= computed_at <= time.time()

    QUERY.write(batch, ctx)
    again = snapshot(ctx)
    assert _without_computed_at(again) == expected
    assert float(again[keys.trending_window("vod")]["computed_at"]) >= computed_at
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= TRENDING_TTL_SECONDS
    assert read_trending(ctx.client, keys, "vod") == [("vod-A", 3), ("vod-B", 1)]
    assert read_trending(ctx.client, keys, "vod", n=1) == [("vod-A", 3)]
    assert read_trending(ctx.client, keys, "live") == [("live-1", 1)]


def test_a_late_batch_counts_without_moving_the_window_back(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    QUERY.write(events_frame(spark, [_heartbeat("u6", "vod-B", 30)]), ctx)
    assert read_trending(ctx.client, ctx.keys, "vod") == [("vod-A", 3), ("vod-B", 2)]
    assert ctx.client.hget(ctx.keys.trending_window("vod"), "end") == str(epoch(240)).encode()
    # The live ranking was not touched by a batch without live events.
    assert read_trending(ctx.client, ctx.keys, "live") == [("live-1", 1)]


def test_the_window_slides_and_titles_without_viewers_in_it_leave_the_ranking(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    QUERY.write(events_frame(spark, [_heartbeat("u7", "vod-C", 720)]), ctx)
    # The window is now [12:03, 12:13): only u3's minute of vod-A is left of the first batch.
    assert read_trending(ctx.client, ctx.keys, "vod") == [("vod-C", 1), ("vod-A", 1)]
    assert ctx.client.hmget(ctx.keys.trending_window("vod"), ["start", "end"]) == [
        str(epoch(180)).encode(), str(epoch(780)).encode()]


def test_a_minute_with_more_viewers_than_a_script_can_unpack_at_once(ctx):
    from speed_layer.trending import apply_trending

    viewers = sorted(f"u{n:05d}" for n in range(9_000))
    apply_trending([{"content_kind": "live", "country": None, "content_id": "live-9", "start": epoch(0),
                     "viewers": viewers}], ctx)
    assert ctx.client.zcard(ctx.keys.trending_viewers("live", "live-9")) == 9_000
    assert read_trending(ctx.client, ctx.keys, "live") == [("live-9", 9_000)]


def test_per_country_rankings_share_the_kind_window_and_leave_when_it_slides(spark, ctx):
    events = [
        # u1 watches vod-A from DE, then from FR: once in the kind's ranking, once in each country's.
        _heartbeat("u1", "vod-A", 0) | {"country": "DE"},
        _heartbeat("u1", "vod-A", 70) | {"country": "FR"},
        _heartbeat("u2", "vod-A", 130) | {"country": "FR"},
        _heartbeat("u3", "vod-A", 200) | {"country": "DE"},
        _heartbeat("u4", "vod-B", 10) | {"country": "DE"},
        _heartbeat("u5", "vod-B", 20),  # no country: only in the kind's ranking
    ]
    QUERY.write(events_frame(spark, events), ctx)
    keys = ctx.keys
    assert read_trending(ctx.client, keys, "vod") == [("vod-A", 3), ("vod-B", 2)]
    assert read_trending(ctx.client, keys, "vod", country="DE") == [("vod-A", 2), ("vod-B", 1)]
    assert read_trending(ctx.client, keys, "vod", country="FR") == [("vod-A", 2)]
    assert ctx.client.smembers(keys.trending_ranked_countries("vod")) == {b"DE", b"FR"}
    window = ctx.client.hgetall(keys.trending_window("vod"))
    assert ctx.client.hgetall(keys.trending_window("vod", "DE"))[b"end"] == window[b"end"] == str(epoch(240)).encode()

    # A later batch in the same window from a new country ranks that country from the window's minutes.
    QUERY.write(events_frame(spark, [_heartbeat("u6", "vod-B", 30) | {"country": "GB"}]), ctx)
    assert read_trending(ctx.client, keys, "vod", country="GB") == [("vod-B", 1)]
    assert dict(read_trending(ctx.client, keys, "vod")) == {"vod-A": 3, "vod-B": 3}

    # The window slides to [12:03, 12:13): DE keeps u3's minute of vod-A, FR and GB have nobody left.
    QUERY.write(events_frame(spark, [_heartbeat("u7", "vod-C", 720) | {"country": "DE"}]), ctx)
    assert dict(read_trending(ctx.client, keys, "vod", country="DE")) == {"vod-A": 1, "vod-C": 1}
    assert read_trending(ctx.client, keys, "vod", country="FR") == []
    assert read_trending(ctx.client, keys, "vod", country="GB") == []
    assert ctx.client.smembers(keys.trending_ranked_countries("vod")) == {b"DE"}
    assert not ctx.client.exists(keys.trending_window("vod", "FR"))

    # A batch that only brings a viewer from before the window (late) leaves DE's ranking as it was.
    QUERY.write(events_frame(spark, [_heartbeat("u8", "vod-A", 100) | {"country": "DE"}]), ctx)
    assert dict(read_trending(ctx.client, keys, "vod", country="DE")) == {"vod-A": 1, "vod-C": 1}
    assert ctx.client.smembers(keys.trending_ranked_countries("vod")) == {b"DE"}

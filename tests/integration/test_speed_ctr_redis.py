"""The CTR writer against the real Redis: exact contents, idempotent replays, TTLs, the rolling rate, the reader.

Contract: each (rail, button, content, minute) is two fields of the rail button's minute bucket, set to the
window's full values; the rolling rate of every rail button touched is recomputed from the buckets of the
trending window that ends at the newest minute (never moved back by a late batch); writing the same micro-batch
again leaves Redis identical; every key has a TTL.
"""

from __future__ import annotations

from speed_layer.ctr import QUERY
from speed_layer.query import fence_value
from speed_layer.source import events_frame
from tests.speed_support import epoch, interaction, rail_interactions, sink_context_fixture, snapshot
from warehouse_models.metrics.ctr import read_ctr
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS

ctx = sink_context_fixture("ctr", batch_id=3)


EVENTS = rail_interactions()


def test_buckets_and_rolling_rates_and_a_replay_changes_nothing(spark, ctx):
    batch = events_frame(spark, EVENTS)
    QUERY.write(batch, ctx)
    keys = ctx.keys
    window_start, window_end = epoch(120 - 600), epoch(120)
    expected = {
        keys.ctr_bucket("top_picks", "tile", epoch(0)): {
            "vod-1:impressions": "2", "vod-1:clicks": "1", "vod-2:impressions": "1"},
        keys.ctr_bucket("top_picks", "tile", epoch(60)): {"vod-1:impressions": "1", "-:clicks": "1"},
        keys.ctr_bucket("detail_actions", "play", epoch(0)): {"vod-1:impressions": "1"},
        # The hour's aggregates: the sums of its minute buckets.
        keys.ctr_hour("top_picks", "tile", epoch(0)): {
            "vod-1:impressions": "3", "vod-1:clicks": "1", "vod-2:impressions": "1", "-:clicks": "1"},
        keys.ctr_hour("detail_actions", "play", epoch(0)): {"vod-1:impressions": "1"},
        keys.ctr_rate("top_picks", "tile"): {
            "impressions": "4", "clicks": "2", "rate": "0.5", "window_start": str(window_start),
            "window_end": str(window_end)},
        keys.ctr_rate("detail_actions", "play"): {
            "impressions": "1", "clicks": "0", "rate": "0.0", "window_start": str(window_start),
            "window_end": str(window_end)},
    }
    expected_all = {**expected, keys.speed_commit("ctr"): fence_value(ctx)}
    assert snapshot(ctx) == expected_all
    assert ctx.stats == {"windows_written": 5, "rates_written": 2}

    QUERY.write(batch, ctx)  # the same micro-batch again, as after a crash: counts not added twice
    assert snapshot(ctx) == expected_all
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= SPEED_BUCKET_TTL_SECONDS


def test_a_late_batch_adds_to_its_bucket_and_keeps_the_rate_window(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    ctx.batch_id += 1
    QUERY.write(events_frame(spark, [interaction("impression", 15)]), ctx)
    assert ctx.client.hget(ctx.keys.ctr_bucket("top_picks", "tile", epoch(0)), "vod-1:impressions") == b"3"
    rate = ctx.client.hgetall(ctx.keys.ctr_rate("top_picks", "tile"))
    assert rate == {b"impressions": b"5", b"clicks": b"2", b"rate": b"0.4",
                    b"window_start": str(epoch(120 - 600)).encode(), b"window_end": str(epoch(120)).encode()}


def test_the_rate_window_slides_with_the_newest_minute(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    ctx.batch_id += 1
    QUERY.write(events_frame(spark, [interaction("impression", 900, content="vod-3")]), ctx)
    rate = ctx.client.hgetall(ctx.keys.ctr_rate("top_picks", "tile"))
    assert rate == {b"impressions": b"1", b"clicks": b"0", b"rate": b"0.0",
                    b"window_start": str(epoch(960 - 600)).encode(), b"window_end": str(epoch(960)).encode()}
    # A rail button the later batch did not touch keeps the rate it had.
    assert ctx.client.hget(ctx.keys.ctr_rate("detail_actions", "play"), "window_end") == str(epoch(120)).encode()


def test_reader_sums_buckets_at_or_after_since(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    now = epoch(120)
    assert read_ctr(ctx.client, ctx.keys, "top_picks", "tile", since_epoch=epoch(0), now_epoch=now) == {
        "impressions": 4, "clicks": 2, "rate": 0.5}
    assert read_ctr(ctx.client, ctx.keys, "top_picks", "tile", since_epoch=epoch(30), now_epoch=now) == {
        "impressions": 1, "clicks": 1, "rate": 1.0}
    assert read_ctr(ctx.client, ctx.keys, "top_picks", "none", since_epoch=epoch(0), now_epoch=now) == {
        "impressions": 0, "clicks": 0, "rate": 0.0}

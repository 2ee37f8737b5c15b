"""The CTR writer against the real Redis: exact contents, idempotent replays, TTLs, the rolling rate, the reader.

Contract: each (rail, button, content, minute) is two fields of the rail button's minute bucket, set to the
window's full values; the rolling rate of every rail button touched is recomputed from the buckets of the
trending window that ends at the newest minute (never moved back by a late batch); writing the same micro-batch
again leaves Redis identical; every key has a TTL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from speed_layer.ctr import ctr_rows, read_ctr, write_ctr
from speed_layer.query import SinkContext
from speed_layer.source import events_frame
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS
from warehouse_models.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _epoch(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp())


def _interaction(event_type: str, seconds: float, *, rail: str = "top_picks", button: str = "tile",
                 content: str | None = "vod-1") -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": "acc-1",
        "user_id": "u1", "page": "home", "rail_id": rail, "button_id": button,
    }
    if content is not None:
        event["content_id"] = content
    return event


@pytest.fixture
def ctx(redis_service, isolated: Settings) -> Iterator[SinkContext]:
    client = isolated.redis_client()
    try:
        yield SinkContext(settings=isolated, client=client, keys=isolated.keys, query_name="ctr", batch_id=3)
    finally:
        stale = list(client.scan_iter(match=isolated.keys.pattern()))
        if stale:
            client.delete(*stale)
        client.close()


def _dump(ctx: SinkContext) -> dict[str, dict[str, str]]:
    client = ctx.client
    return {key.decode(): {f.decode(): v.decode() for f, v in client.hgetall(key).items()}
            for key in client.scan_iter(match=ctx.keys.pattern())}


EVENTS = [
    _interaction("impression", 0),
    _interaction("impression", 10),
    _interaction("impression", 5, content="vod-2"),
    _interaction("click", 20),
    _interaction("impression", 30, rail="detail_actions", button="play"),
    _interaction("impression", 70),
    _interaction("click", 75, content=None),
]


def test_buckets_and_rolling_rates_and_a_replay_changes_nothing(spark, ctx):
    batch = ctr_rows(events_frame(spark, EVENTS), ctx.settings)
    write_ctr(batch, ctx)
    keys = ctx.keys
    window_start, window_end = _epoch(120 - 600), _epoch(120)
    expected = {
        keys.ctr_bucket("top_picks", "tile", _epoch(0)): {
            "vod-1:impressions": "2", "vod-1:clicks": "1", "vod-2:impressions": "1", "vod-2:clicks": "0"},
        keys.ctr_bucket("top_picks", "tile", _epoch(60)): {
            "vod-1:impressions": "1", "vod-1:clicks": "0", "-:impressions": "0", "-:clicks": "1"},
        keys.ctr_bucket("detail_actions", "play", _epoch(0)): {"vod-1:impressions": "1", "vod-1:clicks": "0"},
        keys.ctr_rate("top_picks", "tile"): {
            "impressions": "4", "clicks": "2", "rate": "0.5", "window_start": str(window_start),
            "window_end": str(window_end)},
        keys.ctr_rate("detail_actions", "play"): {
            "impressions": "1", "clicks": "0", "rate": "0.0", "window_start": str(window_start),
            "window_end": str(window_end)},
    }
    assert _dump(ctx) == expected
    assert ctx.stats == {"windows_written": 5, "rates_written": 2}

    write_ctr(batch, ctx)
    assert _dump(ctx) == expected
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= SPEED_BUCKET_TTL_SECONDS


def test_a_late_batch_updates_its_bucket_and_keeps_the_rate_window(spark, ctx):
    write_ctr(ctr_rows(events_frame(spark, EVENTS), ctx.settings), ctx)
    late = ctr_rows(events_frame(spark, [*EVENTS, _interaction("impression", 15)]), ctx.settings)
    write_ctr(late.where(f"content_id = 'vod-1' AND rail_id = 'top_picks' "
                         f"AND cast(window_start AS long) = {_epoch(0)}"), ctx)
    assert ctx.client.hget(ctx.keys.ctr_bucket("top_picks", "tile", _epoch(0)), "vod-1:impressions") == b"3"
    rate = ctx.client.hgetall(ctx.keys.ctr_rate("top_picks", "tile"))
    assert rate == {b"impressions": b"5", b"clicks": b"2", b"rate": b"0.4",
                    b"window_start": str(_epoch(120 - 600)).encode(), b"window_end": str(_epoch(120)).encode()}


def test_the_rate_window_slides_with_the_newest_minute(spark, ctx):
    write_ctr(ctr_rows(events_frame(spark, EVENTS), ctx.settings), ctx)
    write_ctr(ctr_rows(events_frame(spark, [_interaction("impression", 900, content="vod-3")]), ctx.settings), ctx)
    rate = ctx.client.hgetall(ctx.keys.ctr_rate("top_picks", "tile"))
    assert rate == {b"impressions": b"1", b"clicks": b"0", b"rate": b"0.0",
                    b"window_start": str(_epoch(960 - 600)).encode(), b"window_end": str(_epoch(960)).encode()}
    # A rail button the later batch did not touch keeps the rate it had.
    assert ctx.client.hget(ctx.keys.ctr_rate("detail_actions", "play"), "window_end") == str(_epoch(120)).encode()


def test_reader_sums_buckets_at_or_after_since(spark, ctx):
    write_ctr(ctr_rows(events_frame(spark, EVENTS), ctx.settings), ctx)
    now = _epoch(120)
    assert read_ctr(ctx.client, ctx.keys, "top_picks", "tile", since_epoch=_epoch(0), now_epoch=now) == {
        "impressions": 4, "clicks": 2, "rate": 0.5}
    assert read_ctr(ctx.client, ctx.keys, "top_picks", "tile", since_epoch=_epoch(30), now_epoch=now) == {
        "impressions": 1, "clicks": 1, "rate": 1.0}
    assert read_ctr(ctx.client, ctx.keys, "top_picks", "none", since_epoch=_epoch(0), now_epoch=now) == {
        "impressions": 0, "clicks": 0, "rate": 0.0}

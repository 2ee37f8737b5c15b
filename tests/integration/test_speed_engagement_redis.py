"""The engagement writer against the real Redis: exact contents, idempotent replays, TTLs, and the reader.

Contract: each (user, 5-second window) is three fields of the user's minute bucket, set to the window's full
values; writing the same micro-batch again leaves Redis identical; a window re-emitted with a late event is
overwritten, not added to; every key has a TTL; the reader sums the windows at or after ``since_epoch``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from speed_layer.engagement import engagement_rows, read_engagement, write_engagement
from speed_layer.query import SinkContext
from speed_layer.source import events_frame
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS
from warehouse_models.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _epoch(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp())


def _event(event_type: str, user: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{user}",
        "user_id": user,
    }
    event.update(fields)
    return event


def _heartbeat(user: str, seconds: float, state: str = "playing") -> dict[str, Any]:
    return _event("heartbeat", user, seconds, device_type="tv", session_id=f"ses-{user}", content_id="vod-1",
                  position_seconds=seconds, player_state=state)


def _click(user: str, seconds: float) -> dict[str, Any]:
    return _event("click", user, seconds, rail_id="top_picks", button_id="tile", content_id="vod-1")


@pytest.fixture
def ctx(redis_service, isolated: Settings) -> Iterator[SinkContext]:
    client = isolated.redis_client()
    try:
        yield SinkContext(settings=isolated, client=client, keys=isolated.keys, query_name="engagement", batch_id=7)
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
    _heartbeat("u1", 0),
    _click("u1", 3),
    _heartbeat("u1", 10, state="paused"),
    _heartbeat("u1", 65),
    _heartbeat("u2", 1),
]


def test_windows_land_in_minute_buckets_and_a_replay_changes_nothing(spark, ctx):
    batch = engagement_rows(events_frame(spark, EVENTS), ctx.settings)
    write_engagement(batch, ctx)
    keys = ctx.keys
    expected = {
        keys.user_engagement_bucket("u1", _epoch(0)): {
            f"{_epoch(0)}:watch_seconds": "10", f"{_epoch(0)}:events": "2", f"{_epoch(0)}:clicks": "1",
            f"{_epoch(10)}:watch_seconds": "0", f"{_epoch(10)}:events": "1", f"{_epoch(10)}:clicks": "0",
        },
        keys.user_engagement_bucket("u1", _epoch(60)): {
            f"{_epoch(65)}:watch_seconds": "10", f"{_epoch(65)}:events": "1", f"{_epoch(65)}:clicks": "0",
        },
        keys.user_engagement_bucket("u2", _epoch(0)): {
            f"{_epoch(0)}:watch_seconds": "10", f"{_epoch(0)}:events": "1", f"{_epoch(0)}:clicks": "0",
        },
    }
    assert _dump(ctx) == expected
    assert ctx.stats == {"windows_written": 4, "buckets_written": 3}

    write_engagement(batch, ctx)
    assert _dump(ctx) == expected
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= SPEED_BUCKET_TTL_SECONDS


def test_a_window_re_emitted_with_a_late_event_is_overwritten_not_added(spark, ctx):
    write_engagement(engagement_rows(events_frame(spark, EVENTS), ctx.settings), ctx)
    # Update mode re-emits the whole window the late heartbeat changed (and only that window).
    late = engagement_rows(events_frame(spark, [*EVENTS, _heartbeat("u1", 4)]), ctx.settings)
    write_engagement(late.where(f"user_id = 'u1' AND cast(window_start AS long) = {_epoch(0)}"), ctx)
    bucket = ctx.client.hgetall(ctx.keys.user_engagement_bucket("u1", _epoch(0)))
    assert bucket[f"{_epoch(0)}:watch_seconds".encode()] == b"20"
    assert bucket[f"{_epoch(0)}:events".encode()] == b"3"
    assert bucket[f"{_epoch(0)}:clicks".encode()] == b"1"


def test_reader_sums_windows_at_or_after_since(spark, ctx):
    write_engagement(engagement_rows(events_frame(spark, EVENTS), ctx.settings), ctx)
    now = _epoch(120)
    assert read_engagement(ctx.client, ctx.keys, "u1", now_epoch=now) == {
        "watch_seconds": 20, "events": 4, "clicks": 1}
    assert read_engagement(ctx.client, ctx.keys, "u1", since_epoch=_epoch(10), now_epoch=now) == {
        "watch_seconds": 10, "events": 2, "clicks": 0}
    assert read_engagement(ctx.client, ctx.keys, "u1", since_epoch=_epoch(60), now_epoch=now) == {
        "watch_seconds": 10, "events": 1, "clicks": 0}
    assert read_engagement(ctx.client, ctx.keys, "nobody", now_epoch=now) == {
        "watch_seconds": 0, "events": 0, "clicks": 0}
    # Buckets older than their TTL are not looked for.
    assert read_engagement(ctx.client, ctx.keys, "u1", now_epoch=now + SPEED_BUCKET_TTL_SECONDS + 600) == {
        "watch_seconds": 0, "events": 0, "clicks": 0}

"""The serving layer's pure parts: the merge, the rate limiter, key scopes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from serving.api.auth import ApiKey, RateLimiter, digest
from serving.views.merge import add_counts, daily_totals, is_complete, newest_by_event_time, speed_since
from warehouse_models.batch_versions import BatchRead
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS

T = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


def test_additive_views_add_batch_before_w_and_speed_from_w():
    batch = BatchRead("w1-p1", 1_000, {"watch_seconds": 30, "events": 4})
    assert speed_since(batch) == 1_000 and speed_since(None) is None
    assert add_counts(batch.values, {"watch_seconds": 10, "clicks": 1}, ("watch_seconds", "events", "clicks")) == {
        "watch_seconds": 40, "events": 4, "clicks": 1}
    assert add_counts(None, {"events": 2}, ("events",)) == {"events": 2}


def test_daily_totals_add_the_batch_days_and_the_speed_hours_by_utc_date():
    now = datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc).timestamp()
    w = datetime(2026, 3, 1, 23, 0, tzinfo=timezone.utc).timestamp()  # W: the last hour of 1 March
    batch = {"2026-03-01": {"events": 5, "clicks": 1}, "2026-02-27": {"events": 2}}
    # Speed hours from W on: 23:00 on 1 March, then 00:00 and 01:00 on 2 March.
    hours = {int(w): {"events": 3}, int(w) + 3600: {"events": 4, "clicks": 2}, int(w) + 7200: {"events": 1}}
    daily = daily_totals(batch, hours, ("events", "clicks"), days=3, now=now)
    assert daily == {"2026-02-28": {"events": 0, "clicks": 0}, "2026-03-01": {"events": 8, "clicks": 1},
                     "2026-03-02": {"events": 5, "clicks": 2}}
    assert list(daily_totals(batch, hours, ("events",), days=1, now=now)) == ["2026-03-02"]


def test_an_answer_is_complete_while_the_speed_buckets_still_hold_w():
    batch = BatchRead("v", 10_000, {})
    assert is_complete(batch, now=10_000 + SPEED_BUCKET_TTL_SECONDS - 1)
    assert not is_complete(batch, now=10_000 + SPEED_BUCKET_TTL_SECONDS)
    assert not is_complete(None, now=0)


def test_latest_value_is_the_newest_by_event_time_whichever_layer_has_it():
    assert newest_by_event_time([(T, "batch"), (T + timedelta(seconds=1), "speed")]) == "speed"
    assert newest_by_event_time([None, (T, "batch")]) == "batch"
    assert newest_by_event_time([(T, "first"), (T, "second")]) == "first"
    assert newest_by_event_time([None, None]) is None


def test_rate_limiter_allows_a_burst_of_twice_the_rate_then_refills():
    limiter = RateLimiter(default_rate=2.0)
    assert [limiter.take("app", now=0.0) for _ in range(4)] == [0.0] * 4
    assert limiter.take("app", now=0.0) == 0.5  # the next token in half a second
    assert limiter.take("app", now=0.5) == 0.0
    assert limiter.take("other", 1.0, now=0.5) == 0.0  # buckets are per key, with the key's own rate
    assert limiter.take("other", 1.0, now=0.5) == 0.0
    assert limiter.take("other", 1.0, now=0.5) == 1.0


def test_a_key_slower_than_one_request_per_two_seconds_still_gets_its_requests():
    limiter = RateLimiter(default_rate=100.0)
    assert limiter.take("slow", 0.2, now=0.0) == 0.0
    assert limiter.take("slow", 0.2, now=1.0) == pytest.approx(4.0)  # one token every 5 s
    assert limiter.take("slow", 0.2, now=5.0) == 0.0


def test_admin_implies_every_scope_and_keys_are_stored_by_digest():
    reader = ApiKey("tv", frozenset({"read"}), None, "")
    admin = ApiKey("ops", frozenset({"admin"}), None, "")
    assert reader.allows("read") and not reader.allows("playback") and not reader.allows("admin")
    assert admin.allows("read") and admin.allows("playback")
    assert digest("rk_abc") == digest("rk_abc") != digest("rk_abd") and len(digest("rk_abc")) == 64


def _drain(receive) -> list[bytes]:
    import asyncio

    async def read() -> list[bytes]:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return chunks
    return asyncio.run(read())


def _receiver(chunks: list[bytes]):
    messages = iter([{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                     for i, c in enumerate(chunks)])

    async def receive():
        return next(messages)
    return receive


def test_bounded_receive_refuses_a_body_past_its_limit_as_soon_as_it_shows():
    from serving.api.app import ApiError, bounded_receive

    def scope(method: str, length: int | None = None) -> dict:
        headers = [(b"content-length", str(length).encode())] if length is not None else []
        return {"type": "http", "method": method, "headers": headers}

    assert _drain(bounded_receive(scope("POST", 10), _receiver([b"0123456789"]), 10)) == [b"0123456789"]
    # Announced too long: refused before anything is read.
    announced = _receiver([b"x"])
    with pytest.raises(ApiError) as refused:
        _drain(bounded_receive(scope("POST", 11), announced, 10))
    assert refused.value.status_code == 413 and refused.value.headers == {"Connection": "close"}
    assert _drain(announced) == [b"x"]  # still unread
    # Chunked: refused at the chunk that passes the limit, not after the stream.
    chunks = _receiver([b"123456", b"789012", b"never read"])
    with pytest.raises(ApiError):
        _drain(bounded_receive(scope("POST"), chunks, 10))
    assert _drain(chunks) == [b"never read"]
    # GET bodies are never read by the routes: left alone.
    plain = _receiver([b"x" * 100])
    assert bounded_receive(scope("GET", 100), plain, 10) is plain

"""The spike writer against the real Redis: per-second traffic buckets and alerts that never repeat.

Contract: each (scope, second) count is a field of the scope's minute bucket, set to the window's whole value,
with the traffic TTL; every complete second is judged once, in order, whether it arrives in many micro-batches or
in one catch-up batch: a title at a steady 2 events/s for 3 minutes that jumps to 40 events/s for 20 s raises
exactly one alert for its scope at the jump (a busier title on the same topic keeps the topic under its factor),
and back at 2 events/s the alert clears 10 s after the last spiking second; writing the same micro-batch again
leaves Redis identical and raises nothing; the second still filling at the end of a batch is judged by the next
one even when no more of its events arrive; the alert stream, the open-alert hash and the judged marks have TTLs.

The background traffic was already counted for the baseline before T0, as on a layer that has been running: a
scope's first seconds are judged against the zeros before them, so a busy scope counted from nothing spikes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from serving.views.speed import read_active_alerts, read_alerts
from speed_layer.query import SinkContext
from speed_layer.source import events_frame
from speed_layer.spikes import ALERTS_TTL_SECONDS, QUERY, read_traffic
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import TRAFFIC_TTL_SECONDS, bucket_start
from warehouse_models.settings import Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0_S = int(T0.timestamp())
BACKGROUND_EPS = 20
"""Busy enough that the topic (+ 38 events/s at the spike) stays under 3 x its baseline."""


def _heartbeats(content: str, first: int, last: int, per_second: int) -> list[dict[str, Any]]:
    """``per_second`` heartbeats of one title in each second from ``first`` to ``last`` (inclusive)."""
    events = []
    for second in range(first, last + 1):
        for i in range(per_second):
            at = T0 + timedelta(seconds=second + i / per_second)
            events.append({
                "event_id": f"{content}-{second}-{i}", "schema_version": 1, "event_type": "heartbeat",
                "event_timestamp": format_timestamp(at), "account_id": f"acc-{i}", "user_id": f"usr-{i}",
                "device_type": "tv", "session_id": f"ses-{content}-{i}", "content_id": content,
                "position_seconds": float(second), "player_state": "playing",
            })
    return events


def _phase(first: int, last: int, per_second: int) -> list[dict[str, Any]]:
    return _heartbeats("live-1", first, last, per_second) + _heartbeats("vod-bg", first, last, BACKGROUND_EPS)


@pytest.fixture
def ctx(redis_service, isolated: Settings) -> Iterator[SinkContext]:
    client = isolated.redis_client(lean=True)
    try:
        yield SinkContext(settings=isolated, client=client, keys=isolated.keys, query_name="spikes", batch_id=0)
    finally:
        stale = list(client.scan_iter(match=isolated.keys.pattern()))
        if stale:
            client.delete(*stale)
        client.close()


def _dump(ctx: SinkContext) -> dict[str, Any]:
    client = ctx.client
    out: dict[str, Any] = {}
    for key in client.scan_iter(match=ctx.keys.pattern()):
        kind = client.type(key).decode()
        if kind == "hash":
            out[key.decode()] = client.hgetall(key)
        elif kind == "stream":
            out[key.decode()] = client.xrange(key)
        else:
            out[key.decode()] = kind
    return out


def _warm(ctx: SinkContext) -> None:
    """The background scopes' counts over the baseline before T0, as the layer would have set them."""
    seconds = range(T0_S - ctx.settings.speed_spike_baseline_seconds, T0_S)
    for scope, per_second in (("content:vod-bg", BACKGROUND_EPS), ("topic:playback", BACKGROUND_EPS + 2)):
        for s in seconds:
            ctx.client.hset(ctx.keys.traffic_bucket(scope, bucket_start(s)), str(s), per_second)


def _judged(ctx: SinkContext) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in ctx.client.hgetall(ctx.keys.spike_judged()).items()}


def _entries(ctx: SinkContext) -> list[dict[str, Any]]:
    """The alert entries without their stream ids, newest first."""
    return [{k: v for k, v in a.items() if k != "id"} for a in read_alerts(ctx.client, ctx.keys, n=100)]


def _write(spark, ctx: SinkContext, events: list[dict[str, Any]], batch_id: int) -> dict[str, Any]:
    ctx.batch_id, ctx.stats = batch_id, {}
    QUERY.write(events_frame(spark, events), ctx)
    return ctx.stats


def test_a_spike_raises_one_alert_that_a_replay_does_not_repeat_and_calm_clears(spark, ctx):
    keys, client = ctx.keys, ctx.client
    _warm(ctx)
    steady, spike, calm = _phase(0, 179, 2), _phase(180, 199, 40), _phase(200, 219, 2)

    assert _write(spark, ctx, steady, 0) == {"alerts_raised": 0, "alerts_cleared": 0}
    assert read_alerts(client, keys) == [] and read_active_alerts(client, keys) == {}
    assert read_traffic(client, keys, "content:live-1", first=T0_S - 5, last=T0_S + 2) == {
        T0_S: 2, T0_S + 1: 2, T0_S + 2: 2}
    assert read_traffic(client, keys, "topic:playback", first=T0_S + 179, last=T0_S + 179) == {
        T0_S + 179: BACKGROUND_EPS + 2}
    for minute in (T0_S, T0_S + 60, T0_S + 120):
        assert 0 < client.ttl(keys.traffic_bucket("content:live-1", minute)) <= TRAFFIC_TTL_SECONDS
    # 12:02:59 may still be filling: judged up to the second before it.
    assert _judged(ctx) == dict.fromkeys(("content:live-1", "content:vod-bg", "topic:playback"), T0_S + 178)

    # Raised at 12:03:00, the first spiking second: 40 events/s against the 2 events/s of the two minutes
    # before; the topic (60 against 22) stays under 3 x its baseline.
    assert _write(spark, ctx, spike, 1) == {"alerts_raised": 1, "alerts_cleared": 0}
    raised = {"type": "raised", "scope": "content:live-1", "rate": 40, "baseline": 2.0, "factor": 3.0,
              "since": T0_S + 180}
    assert _entries(ctx) == [raised]
    assert read_active_alerts(client, keys) == {
        "content:live-1": {"scope": "content:live-1", "rate": 40, "baseline": 2.0, "factor": 3.0,
                           "since": T0_S + 180}}
    for key in (keys.spike_alerts(), keys.spike_active(), keys.spike_judged()):
        assert 0 < client.ttl(key) <= ALERTS_TTL_SECONDS

    before = _dump(ctx)
    assert _write(spark, ctx, spike, 1) == {"alerts_raised": 0, "alerts_cleared": 0}
    assert _dump(ctx) == before

    # Back to 2 events/s from 12:03:20: 12:03:29 is the 10th second without a spike against the baseline of 2.
    assert _write(spark, ctx, calm, 2) == {"alerts_raised": 0, "alerts_cleared": 1}
    cleared = {**raised, "type": "cleared", "rate": 2, "until": T0_S + 209}
    assert _entries(ctx) == [cleared, raised]
    assert read_active_alerts(client, keys) == {}

    after = _dump(ctx)
    assert _write(spark, ctx, calm, 2) == {"alerts_raised": 0, "alerts_cleared": 0}
    assert _dump(ctx) == after


def test_one_catch_up_batch_raises_and_clears_once_and_a_later_batch_goes_on(spark, ctx):
    keys, client = ctx.keys, ctx.client
    _warm(ctx)
    quarter = _phase(0, 179, 2) + _phase(180, 199, 40) + _phase(200, 259, 2)

    assert _write(spark, ctx, quarter, 0) == {"alerts_raised": 1, "alerts_cleared": 1}
    raised = {"type": "raised", "scope": "content:live-1", "rate": 40, "baseline": 2.0, "factor": 3.0,
              "since": T0_S + 180}
    cleared = {**raised, "type": "cleared", "rate": 2, "until": T0_S + 209}
    assert _entries(ctx) == [cleared, raised]
    assert read_active_alerts(client, keys) == {}
    assert _judged(ctx) == dict.fromkeys(("content:live-1", "content:vod-bg", "topic:playback"), T0_S + 258)
    assert 0 < client.ttl(keys.spike_judged()) <= ALERTS_TTL_SECONDS

    before = _dump(ctx)
    assert _write(spark, ctx, quarter, 0) == {"alerts_raised": 0, "alerts_cleared": 0}
    assert _dump(ctx) == before

    # The next batch judges from 12:04:19, the second the first one left unjudged (its events came in that
    # batch); a second spike at 12:05:00 is measured against the two minutes before it, the first spike's tail
    # included: (20 x 40 + 100 x 2) / 120.
    later = _phase(260, 299, 2) + _phase(300, 309, 40) + _phase(310, 339, 2)
    assert _write(spark, ctx, later, 1) == {"alerts_raised": 1, "alerts_cleared": 1}
    raised_again = {**raised, "baseline": 8.333, "since": T0_S + 300}
    cleared_again = {**raised_again, "type": "cleared", "rate": 2, "until": T0_S + 319}
    assert _entries(ctx) == [cleared_again, raised_again, cleared, raised]
    assert _judged(ctx) == dict.fromkeys(("content:live-1", "content:vod-bg", "topic:playback"), T0_S + 338)


def test_the_second_still_filling_at_a_batch_end_is_judged_by_the_next_batch(spark, ctx):
    _warm(ctx)
    # 12:03:00 is the newest second of the first batch (not judged yet) and gets no more events afterwards.
    assert _write(spark, ctx, _phase(0, 179, 2) + _phase(180, 180, 40), 0) == {
        "alerts_raised": 0, "alerts_cleared": 0}
    assert _write(spark, ctx, _phase(181, 190, 40), 1) == {"alerts_raised": 1, "alerts_cleared": 0}
    assert _entries(ctx) == [{"type": "raised", "scope": "content:live-1", "rate": 40, "baseline": 2.0,
                              "factor": 3.0, "since": T0_S + 180}]


def test_the_in_process_copy_of_recent_counts_judges_as_reading_redis_every_batch(redis_service, isolated: Settings):
    """The writer keeps the counts it read and wrote in memory; on the same batches (late seconds, a second still
    filling, a second far ahead) it must raise and clear exactly what a writer reading Redis every batch does."""
    import random

    from speed_layer import spikes

    settings = isolated.model_copy(update={"speed_spike_baseline_seconds": 20})
    rng = random.Random(5)
    batches: list[list[dict[str, Any]]] = []
    for b in range(40):
        counts: dict[tuple[str, int], int] = {}
        for second in range(T0_S + 3 * b, T0_S + 3 * b + 4):  # overlapping: each batch ends in a filling second
            for scope, rate in (("topic:playback", 30), ("content:vod-bg", 20), ("content:live-1", 3)):
                busy = scope == "content:live-1" and 30 <= second - T0_S < 42
                counts[(scope, second)] = counts.get((scope, second), 0) + rng.randint(1, rate) + (80 if busy else 0)
        if b % 7 == 3:  # a late second
            counts[("content:vod-bg", T0_S + 3 * b - 30)] = 5
        if b == 18:  # a burst far ahead of the batch (a skewed clock), written before the writer restarts
            counts[("content:live-1", T0_S + 3 * b + 40)] = 200
        batches.append([{"scope": scope, "second": second, "events": n} for (scope, second), n in counts.items()])
    # A new title first seen in the second still filling at the end of batch 24; batch 25 is a trickle that does
    # not get past that second but brings a late event of the title, so the writer reads the title's history
    # while that second's count so far is only in Redis.
    batches[24].append({"scope": "content:new-1", "second": T0_S + 75, "events": 100})
    batches[25] = [{"scope": "topic:playback", "second": T0_S + second, "events": 20} for second in (74, 75)] + [
        {"scope": "content:new-1", "second": T0_S + 70, "events": 1},
        {"scope": "content:new-1", "second": T0_S + 75, "events": 100}]
    batches[26].append({"scope": "content:new-1", "second": T0_S + 79, "events": 1})  # touched again: judged on

    def run(prefix: str, *, forget: bool) -> dict[str, Any]:
        run_settings = settings.model_copy(update={"redis_key_prefix": prefix})
        client = run_settings.redis_client(lean=True)
        ctx = SinkContext(settings=run_settings, client=client, keys=run_settings.keys, query_name="spikes",
                          batch_id=0)
        for batch_id, rows in enumerate(batches):
            if forget or batch_id == 19:  # every batch a new process, or one restart
                spikes._RECENT.clear()
            ctx.batch_id = batch_id
            spikes.apply_spikes(rows, ctx)
        return {"alerts": _entries(ctx), "active": read_active_alerts(client, ctx.keys), "judged": _judged(ctx)}

    cached = run(f"{isolated.redis_key_prefix}-a", forget=False)
    read_each_time = run(f"{isolated.redis_key_prefix}-b", forget=True)
    assert cached == read_each_time
    assert {a["type"] for a in cached["alerts"]} == {"raised", "cleared"}, cached["alerts"]
    # The new title's burst counted whole: both micro-batches' parts of its second.
    assert any(a["scope"] == "content:new-1" and a["rate"] == 200 for a in cached["alerts"]), cached["alerts"]
    client = isolated.redis_client(lean=True)
    for key in [*client.scan_iter(match=f"{isolated.redis_key_prefix}-*")]:
        client.delete(key)

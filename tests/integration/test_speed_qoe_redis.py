"""The QoE writers against the real Redis, and the QoE view end to end through Kafka and Spark.

Contract: each (title, device type, country, minute) is one hash with the additive sums of docs/qoe.md; the
shared query adds each micro-batch's event sums and the view_end query each judged session's outcome, each under
its batch-id fence, so writing the same micro-batch again leaves Redis identical and a later one with a late event
adds to its minute; every key has the bucket TTL; the reader returns the buckets and the metrics come from their
merged sums; the running speed layer (the shared query and view_end) writes the buckets the batch transform
computes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from speed_layer.qoe import apply_qoe, write_outcomes
from speed_layer.query import SinkContext, collect_rows
from speed_layer.source import events_frame
from speed_layer.view_end import OUTCOME_COLUMNS, OUTCOME_MS, view_end_rows
from warehouse_models.events import format_timestamp
from warehouse_models.metrics.contributions import reduce_frame
from warehouse_models.metrics.qoe import EVENT_CONTRIBUTIONS, QOE_FIELDS, merge_sums, qoe_metrics, qoe_rows, read_qoe
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS
from warehouse_models.settings import Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0_S = int(T0.timestamp())


def _event(t0: datetime, event_type: str, session: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"{session}-{event_type}-{seconds:g}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(t0 + timedelta(seconds=seconds)), "account_id": f"acc-{session}",
        "user_id": f"usr-{session}", "device_type": "tv", "country": "DE", "session_id": session,
        "content_id": "vod-1",
    }
    event.update(fields)
    return event


def _events(t0: datetime) -> list[dict[str, Any]]:
    """Two sessions in 12:00 (one plays and stalls, one fails to start), one that exits in 12:01."""
    return [
        _event(t0, "play_request", "s1", 0),
        _event(t0, "first_frame", "s1", 1, startup_ms=800),
        _event(t0, "heartbeat", "s1", 11, position_seconds=10.0, player_state="playing", bitrate_kbps=3000),
        _event(t0, "buffer_end", "s1", 15, stall_ms=1500, position_seconds=14.0),
        _event(t0, "heartbeat", "s1", 21, position_seconds=19.0, player_state="playing", bitrate_kbps=3000),
        _event(t0, "play_request", "s2", 30),
        _event(t0, "error", "s2", 32, error_code="NETWORK_TIMEOUT", error_fatal=True),
        _event(t0, "play_request", "s3", 62),
        _event(t0, "play_end", "s3", 70, position_seconds=0.0),
    ]


def _sums(**values: int) -> dict[str, int]:
    return {name: values.get(name, 0) for name in QOE_FIELDS}


MINUTE_0 = _sums(plays=2, startups=1, startup_ms_sum=800, playing_seconds=20, stall_ms=1500, rebuffers=1,
                 bitrate_seconds_kbps=60_000, bitrate_seconds=20, start_failures=1)
MINUTE_1 = _sums(plays=1, exits_before_start=1)


@pytest.fixture
def ctx(redis_service, isolated: Settings) -> Iterator[SinkContext]:
    client = isolated.redis_client(lean=True)
    try:
        yield SinkContext(settings=isolated, client=client, keys=isolated.keys, query_name="qoe", batch_id=3)
    finally:
        stale = list(client.scan_iter(match=isolated.keys.pattern()))
        if stale:
            client.delete(*stale)
        client.close()


def _dump(ctx: SinkContext) -> dict[str, dict[str, int]]:
    client = ctx.client
    return {key.decode(): {f.decode(): int(v) for f, v in client.hgetall(key).items()}
            for key in client.scan_iter(match=ctx.keys.qoe_bucket("*", "*", "*", 0).rsplit(":b:", 1)[0] + ":b:*")}


def _write_batch(spark, ctx: SinkContext, events: list[dict[str, Any]], batch_id: int) -> None:
    """What the two queries write for a micro-batch of ``events``: the shared query's event sums, view_end's
    judged sessions (the batch forms of the same definitions)."""
    frame = events_frame(spark, events)
    apply_qoe(collect_rows(reduce_frame(frame, EVENT_CONTRIBUTIONS)), SinkContext(
        settings=ctx.settings, client=ctx.client, keys=ctx.keys, query_name="views/qoe", batch_id=batch_id))
    ended = view_end_rows(frame, ctx.settings).select("content_id", "device_type", "country", *OUTCOME_COLUMNS,
                                                       OUTCOME_MS)
    write_outcomes(collect_rows(ended), SinkContext(settings=ctx.settings, client=ctx.client, keys=ctx.keys,
                                                    query_name="view_end", batch_id=batch_id))


def test_buckets_add_each_batch_once(spark, ctx):
    _write_batch(spark, ctx, _events(T0), 3)
    keys = ctx.keys

    def nonzero(sums: dict[str, int]) -> dict[str, int]:
        return {name: value for name, value in sums.items() if value}

    expected = {
        keys.qoe_bucket("vod-1", "tv", "DE", T0_S): nonzero(MINUTE_0),
        keys.qoe_bucket("vod-1", "tv", "DE", T0_S + 60): nonzero(MINUTE_1),
    }
    assert _dump(ctx) == expected
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= SPEED_BUCKET_TTL_SECONDS

    # The same micro-batch again (a replay after a crash): both fences hold.
    _write_batch(spark, ctx, _events(T0), 3)
    assert _dump(ctx) == expected

    # The next micro-batch brings a late heartbeat of 12:00: its minute gains it, nothing else changes.
    late = _event(T0, "heartbeat", "s1", 31, position_seconds=29.0, player_state="playing", bitrate_kbps=6000)
    _write_batch(spark, ctx, [late], 4)
    updated = {**MINUTE_0, "playing_seconds": 30, "bitrate_seconds_kbps": 120_000, "bitrate_seconds": 30}
    assert _dump(ctx) == {**expected, keys.qoe_bucket("vod-1", "tv", "DE", T0_S): nonzero(updated)}


def test_reader_and_metrics(spark, ctx):
    _write_batch(spark, ctx, _events(T0), 0)
    buckets = read_qoe(ctx.client, ctx.keys, "vod-1")
    assert buckets == {("tv", "DE", T0_S): MINUTE_0, ("tv", "DE", T0_S + 60): MINUTE_1}
    assert read_qoe(ctx.client, ctx.keys, "vod-1", since=T0_S + 60) == {("tv", "DE", T0_S + 60): MINUTE_1}
    assert read_qoe(ctx.client, ctx.keys, "vod-1", device_type="mobile") == {}
    metrics = qoe_metrics(merge_sums(buckets.values()))
    assert metrics["video_startup_time_ms"] == 800.0
    assert metrics["rebuffering_ratio"] == pytest.approx(1.5 / 21.5)
    assert metrics["average_bitrate_kbps"] == 3000.0
    assert metrics["video_start_failure_rate"] == pytest.approx(1 / 3)
    assert metrics["exit_before_start_rate"] == pytest.approx(1 / 3)


def test_the_speed_layer_writes_the_buckets_the_batch_transform_computes(spark, kafka_service, ctx):
    from kafka import KafkaProducer

    from infra.kafka import ensure_topics
    from speed_layer.job import run_speed_available_now

    # Recent times: the envelope refuses events a month older than their Kafka timestamp.
    t0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=10)
    t0_s = int(t0.timestamp())
    settings = ctx.settings.model_copy(update={"speed_allowed_lateness_seconds": 5})
    ensure_topics(settings)
    # A heartbeat of another title at 12:03 moves the watermark past every session's last event plus the timeout.
    clock = _event(t0, "heartbeat", "s9", 180, content_id="vod-9", position_seconds=1.0, player_state="paused")
    events = [*_events(t0), clock]
    producer = KafkaProducer(**settings.kafka_producer_config())
    for event in events:
        producer.send(settings.topics.playback.name, key=event["account_id"].encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()

    run_speed_available_now(spark, settings, names=["qoe", "view_end"], timeout_s=600)

    expected = {("tv", "DE", t0_s): MINUTE_0, ("tv", "DE", t0_s + 60): MINUTE_1}
    assert read_qoe(ctx.client, ctx.keys, "vod-1") == expected
    assert read_qoe(ctx.client, ctx.keys, "vod-9") == {}  # a paused heartbeat adds nothing
    batch = {(r["device_type"], r["country"], int(r["window_start"].timestamp())): {f: r[f] for f in QOE_FIELDS}
             for r in qoe_rows(events_frame(spark, events), settings).collect() if r["content_id"] == "vod-1"}
    assert batch == expected

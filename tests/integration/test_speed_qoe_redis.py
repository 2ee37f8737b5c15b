"""The QoE writer against the real Redis, and the QoE query end to end through Kafka and Spark.

Contract: each (title, device type, country, minute) is one hash with the whole sums of docs/qoe.md; writing the
same micro-batch again leaves Redis identical; a bucket re-emitted with a late event is overwritten, not added to;
every key has the bucket TTL; the reader returns the buckets and the metrics come from their merged sums; the
streaming query (stateful, event-time timeouts) writes the same buckets the batch transform computes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from speed_layer.qoe import QUERY, write_qoe
from speed_layer.query import SinkContext
from speed_layer.source import events_frame, kafka_stream, parse_records, valid_events
from warehouse_models.events import format_timestamp
from warehouse_models.metrics.qoe import QOE_FIELDS, merge_sums, qoe_metrics, qoe_rows, read_qoe
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
    client = isolated.redis_client()
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
            for key in client.scan_iter(match=ctx.keys.pattern())}


def test_buckets_hold_whole_sums_and_a_replay_changes_nothing(spark, ctx):
    batch = qoe_rows(events_frame(spark, _events(T0)), ctx.settings)
    write_qoe(batch, ctx)
    keys = ctx.keys
    expected = {
        keys.qoe_bucket("vod-1", "tv", "DE", T0_S): MINUTE_0,
        keys.qoe_bucket("vod-1", "tv", "DE", T0_S + 60): MINUTE_1,
    }
    assert _dump(ctx) == expected
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= SPEED_BUCKET_TTL_SECONDS

    write_qoe(batch, ctx)
    assert _dump(ctx) == expected

    # A later micro-batch re-emits 12:00 with a late heartbeat: the whole value replaces the old one.
    late = _event(T0, "heartbeat", "s1", 31, position_seconds=29.0, player_state="playing", bitrate_kbps=6000)
    write_qoe(qoe_rows(events_frame(spark, [*_events(T0), late]), ctx.settings)
              .where("window_start = timestamp'2026-03-01 12:00:00'"), ctx)
    updated = {**MINUTE_0, "playing_seconds": 30, "bitrate_seconds_kbps": 120_000, "bitrate_seconds": 30}
    assert _dump(ctx) == {**expected, keys.qoe_bucket("vod-1", "tv", "DE", T0_S): updated}


def test_reader_and_metrics(spark, ctx):
    write_qoe(qoe_rows(events_frame(spark, _events(T0)), ctx.settings), ctx)
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


def test_streaming_query_writes_the_same_buckets(spark, kafka_service, ctx, tmp_path: Path):
    from kafka import KafkaProducer

    from infra.kafka import ensure_topics

    # Recent times: the envelope refuses events a month older than their Kafka timestamp.
    t0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=10)
    t0_s = int(t0.timestamp())
    settings = ctx.settings.model_copy(update={"speed_allowed_lateness_seconds": 5})
    ensure_topics(settings)
    # A heartbeat of another title at 12:03 moves the watermark past s3's play_request plus the timeout.
    clock = _event(t0, "heartbeat", "s9", 180, content_id="vod-9", position_seconds=1.0, player_state="paused")
    producer = KafkaProducer(**settings.kafka_producer_config())
    for event in [*_events(t0), clock]:
        producer.send(settings.topics.playback.name, key=event["account_id"].encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()

    query = (qoe_rows(valid_events(parse_records(kafka_stream(spark, settings, QUERY.topics))), settings)
             .writeStream.outputMode(QUERY.output_mode)
             .option("checkpointLocation", str(tmp_path / "checkpoint"))
             .foreachBatch(lambda batch, batch_id: write_qoe(batch, SinkContext(
                 settings=settings, client=ctx.client, keys=ctx.keys, query_name="qoe", batch_id=batch_id)))
             .trigger(processingTime="1 second")
             .start())
    expected = {("tv", "DE", t0_s): MINUTE_0, ("tv", "DE", t0_s + 60): MINUTE_1}
    try:
        query.processAllAvailable()
        deadline = time.monotonic() + 60
        while read_qoe(ctx.client, ctx.keys, "vod-1") != expected and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        query.stop()
    assert query.exception() is None
    assert read_qoe(ctx.client, ctx.keys, "vod-1") == expected
    assert read_qoe(ctx.client, ctx.keys, "vod-9") == {("tv", "DE", t0_s + 180): _sums()}

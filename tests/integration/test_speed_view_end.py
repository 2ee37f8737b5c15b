"""The view_end query against real Kafka and Spark: playback topic in, view_end events on the derived topic.

Contract: a streaming query (Kafka source, envelope parsing, ``view_end_rows``, ``write_view_end`` from
foreachBatch) sends one valid view_end per ended session to the derived topic, keyed by account: at once for an
explicit end and for a fatal error before the first frame, and by heartbeat timeout once later events move the
watermark past the silent session; a session still heartbeating sends nothing.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from speed_layer.query import SinkContext
from speed_layer.source import kafka_stream, parse_records, valid_events
from speed_layer.view_end import QUERY, read_view_end, view_end_rows, write_view_end
from warehouse_models.events import TopicKind, format_timestamp, validate_event
from warehouse_models.settings import Settings

# Recent, minute-aligned event times: the envelope check refuses events a month older than their Kafka time.
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=10)


def _event(event_type: str, session: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"{session}-{event_type}-{seconds:g}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{session}",
        "user_id": f"usr-{session}", "device_type": "mobile", "country": "FR", "session_id": session,
        "content_id": "live-1", "is_live": True,
    }
    event.update(fields)
    return event


def _heartbeat(session: str, seconds: float, position: float) -> dict[str, Any]:
    return _event("heartbeat", session, seconds, position_seconds=position, player_state="playing")


def _produce(settings: Settings, events: list[dict[str, Any]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka_producer_config())
    try:
        for event in events:
            producer.send(settings.topics.playback.name, key=event["account_id"].encode(),
                          value=json.dumps(event).encode())
        producer.flush()
    finally:
        producer.close()


def _wait_for_view_ends(settings: Settings, count: int, *, timeout_s: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = read_view_end(settings, timeout_s=2.0)
        if len(found) >= count:
            return found
    return found


def test_view_end_query_sends_explicit_and_timed_out_ends_to_the_derived_topic(spark, kafka_service, isolated,
                                                                             tmp_path: Path):
    from infra.kafka import ensure_topics

    settings = isolated.model_copy(update={"speed_allowed_lateness_seconds": 5})
    ensure_topics(settings)
    first_batch = [
        _event("play_request", "s-end", 0, position_seconds=100.0),
        _event("first_frame", "s-end", 1, startup_ms=900),
        _heartbeat("s-end", 11, 110.0),
        _event("play_end", "s-end", 15, position_seconds=114.0),
        _event("play_request", "s-fail", 2, position_seconds=0.0),
        _event("error", "s-fail", 5, error_code="DRM_LICENSE_FAILED", error_fatal=True),
        _event("play_request", "s-gone", 0, position_seconds=200.0),
        _event("first_frame", "s-gone", 1, startup_ms=1000),
        _heartbeat("s-gone", 11, 210.0),
        _heartbeat("s-gone", 21, 220.0),
    ]
    # Later events of another session move the watermark to 115 s, past s-gone's 21 s + 30 s of silence.
    clock = [_event("play_request", "s-open", 100, position_seconds=0.0), _heartbeat("s-open", 120, 20.0)]

    query = (view_end_rows(valid_events(parse_records(kafka_stream(spark, settings, QUERY.topics))), settings)
             .writeStream.outputMode(QUERY.output_mode)
             .option("checkpointLocation", str(tmp_path / "checkpoint"))
             .foreachBatch(lambda batch, batch_id: write_view_end(batch, SinkContext(
                 settings=settings, client=settings.redis_client(), keys=settings.keys, query_name="view_end",
                 batch_id=batch_id)))
             .trigger(processingTime="1 second")
             .start())
    try:
        _produce(settings, first_batch)
        query.processAllAvailable()
        explicit = _wait_for_view_ends(settings, 2)
        assert sorted(e["session_id"] for e in explicit) == ["s-end", "s-fail"]
        _produce(settings, clock)
        query.processAllAvailable()
        ends = _wait_for_view_ends(settings, 3)
    finally:
        query.stop()

    assert query.exception() is None
    by_session = {e["session_id"]: e for e in ends}
    assert len(ends) == 3 and set(by_session) == {"s-end", "s-fail", "s-gone"}
    common = {"schema_version": 1, "event_type": "view_end", "device_type": "mobile", "country": "FR",
              "content_id": "live-1", "is_live": True}
    assert by_session["s-end"] == {
        **common, "event_id": "ve-s-end", "event_timestamp": format_timestamp(T0 + timedelta(seconds=15)),
        "account_id": "acc-s-end", "user_id": "usr-s-end", "session_id": "s-end", "position_seconds": 114.0,
        "watch_seconds": 10.0, "end_reason": "explicit_end"}
    assert by_session["s-fail"] == {
        **common, "event_id": "ve-s-fail", "event_timestamp": format_timestamp(T0 + timedelta(seconds=5)),
        "account_id": "acc-s-fail", "user_id": "usr-s-fail", "session_id": "s-fail", "position_seconds": 0.0,
        "watch_seconds": 0.0, "end_reason": "explicit_end"}
    assert by_session["s-gone"] == {
        **common, "event_id": "ve-s-gone", "event_timestamp": format_timestamp(T0 + timedelta(seconds=21)),
        "account_id": "acc-s-gone", "user_id": "usr-s-gone", "session_id": "s-gone", "position_seconds": 220.0,
        "watch_seconds": 20.0, "end_reason": "heartbeat_timeout"}
    for event in ends:
        assert validate_event(event).ok
    assert _record_keys(settings) == {"acc-s-end", "acc-s-fail", "acc-s-gone"}


def _record_keys(settings: Settings) -> set[str]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topics.derived.name, **settings.kafka_consumer_config(consumer_timeout_ms=3000))
    try:
        return {message.key.decode() for message in consumer}
    finally:
        consumer.close()


def test_view_end_query_is_declared_for_the_job():
    assert QUERY.topics == (TopicKind.PLAYBACK,)
    assert QUERY.transform is view_end_rows and QUERY.write is write_view_end

"""Kafka, Redis and Dagster answer as the real services, started by the project's own infra code."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from warehouse_models.events import decode_and_validate, encode, format_timestamp, kafka_key


def _events(n: int, *, accounts: int = 7) -> list[dict]:
    base = datetime.now(timezone.utc) - timedelta(minutes=5)
    return [
        {
            "event_id": f"it-{uuid.uuid4().hex}", "schema_version": 1, "event_type": "heartbeat",
            "event_timestamp": format_timestamp(base + timedelta(seconds=i)), "account_id": f"acc-{i % accounts}",
            "user_id": f"usr-{i % accounts}", "session_id": f"ses-{i % accounts}", "content_id": "vod-1",
            "device_type": "web", "position_seconds": float(i * 10), "player_state": "playing",
        }
        for i in range(n)
    ]


def test_kafka_produce_and_consume_back_in_key_order(kafka_service, isolated):
    from kafka import KafkaConsumer, KafkaProducer

    from infra.kafka import ensure_topics

    created = ensure_topics(isolated)
    assert set(created) == set(isolated.topics.names())
    topic = isolated.topics.playback.name
    events = _events(300)
    producer = KafkaProducer(**isolated.kafka_producer_config())
    futures = [producer.send(topic, key=kafka_key(e), value=encode(e)) for e in events]
    producer.flush()
    metadata = [f.get(timeout=30) for f in futures]
    producer.close()
    assert {m.topic for m in metadata} == {topic}

    consumer = KafkaConsumer(topic, **isolated.kafka_consumer_config(group_id=None, consumer_timeout_ms=10_000))
    received = []
    deadline = time.monotonic() + 60
    while len(received) < len(events) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            received.extend(records)
    consumer.close()

    assert sorted(r.value for r in received) == sorted(encode(e) for e in events)
    # One account's events share a partition and keep their order there.
    by_account: dict[bytes, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    for r in sorted(received, key=lambda r: (r.partition, r.offset)):
        event = decode_and_validate(r.value).event
        by_account.setdefault(r.key, []).append(int(event["position_seconds"]))
        partitions.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert all(positions == sorted(positions) for positions in by_account.values())


def test_kafka_topics_are_not_auto_created(kafka_service, isolated):
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    producer = KafkaProducer(**isolated.kafka_producer_config(max_block_ms=3000))
    with pytest.raises(KafkaTimeoutError):
        producer.send(f"{isolated.kafka_topic_prefix}.typo", value=b"x").get(timeout=5)
    producer.close(timeout=2)


def test_redis_round_trip_with_key_layout_and_ttl(redis_service, isolated):
    client = isolated.redis_client(db=9)
    try:
        key = isolated.keys.resume_position("usr-1")
        client.hset(key, "vod-1", "1767225600000:120.5")
        client.expire(key, 60)
        assert client.hget(key, "vod-1") == b"1767225600000:120.5"
        assert 0 < client.ttl(key) <= 60
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.delete(key)
        client.close()


def test_status_reports_the_running_services(kafka_service, redis_service):
    from infra.services import status

    report = {s.name: s for s in status(kafka_service)}
    assert report["kafka"].healthy and report["redis"].healthy
    assert report["spark"].healthy, report["spark"].detail
    assert report["kafka"].address == kafka_service.kafka_bootstrap_servers


def test_kafka_start_refuses_a_taken_port_with_advice(kafka_service, tmp_path):
    """A second broker on the port of a process that is not Kafka gets a message saying what to do."""
    import socket

    from infra import kafka
    from infra.process import ServiceError
    from warehouse_models.settings import Settings

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        controller_port = free.getsockname()[1]  # free again once closed
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(64)
        port = blocker.getsockname()[1]
        settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{port}",
                            kafka_controller_port=controller_port)
        with pytest.raises(ServiceError, match=rf"Port {port} on 127.0.0.1 is taken by .*Stop that process"):
            kafka.start(settings)

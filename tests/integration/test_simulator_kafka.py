"""The simulator's events land in the real Kafka topics exactly as its ground truth says, keyed by account."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from simulator import SimulationConfig, ground_truth, simulate
from simulator.sinks import SinkError, write_kafka


def test_simulated_minutes_into_kafka_match_the_ground_truth(kafka_service, isolated):
    from kafka import KafkaConsumer

    from infra.kafka import ensure_topics, topic_record_counts
    from warehouse_models.events import decode_and_validate

    ensure_topics(isolated)
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=10)
    config = SimulationConfig(start=start, duration=timedelta(minutes=10), users=150, seed=7)
    events = list(simulate(config))
    truth = ground_truth(events, config=config)

    sent = write_kafka(events, isolated)
    expected = {isolated.topics.for_kind(kind).name: n for kind, n in truth["events_per_topic"].items()}
    assert sent == expected
    held = topic_record_counts(isolated)
    assert {name: n for name, n in held.items() if n} == expected

    topic = isolated.topics.playback.name
    consumer = KafkaConsumer(topic, **isolated.kafka_consumer_config(group_id=None, consumer_timeout_ms=5000))
    types: Counter[str] = Counter()
    for record in consumer:
        event = decode_and_validate(record.value).event
        assert event is not None and record.key == event["account_id"].encode()
        types[event["event_type"].value] += 1
    consumer.close()
    assert {t: n for t, n in truth["events_per_type"].items() if t in types} == dict(types)
    assert sum(types.values()) == expected[topic]


def test_the_kafka_sink_says_what_to_do_when_no_broker_answers(isolated):
    unreachable = isolated.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    with pytest.raises(SinkError, match="reelytics up"):
        write_kafka([], unreachable)

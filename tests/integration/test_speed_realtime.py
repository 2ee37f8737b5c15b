"""The resume view in Spark's real-time mode: real Kafka -> long-running Spark tasks -> real Redis.

Contract: hand-made playback events produced to Kafka (some before the query starts, some while it runs, an older
event of a title after a newer one, a live event) end up in Redis exactly as the view's own transform and
``newest_positions`` say, read back with ``read_resume``; the query then stops cleanly. A Spark master with
fewer task slots than the topic has partitions is refused with a message that says what to set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from serving.views.speed import read_resume
from speed_layer.realtime import RealtimeModeError, check_task_slots, start_realtime_resume
from speed_layer.resume import QUERY, newest_positions
from speed_layer.source import events_frame
from tests.speed_support import clear_prefix
from warehouse_models.events import format_timestamp
from warehouse_models.redis_io import utc_from_ms
from warehouse_models.settings import Settings

NOW = datetime.now(timezone.utc).replace(microsecond=0)
"""Recent event times: events far in the past are dead letters, not views."""


def _playback(event_id: str, event_type: str, seconds_ago: float, position: float, *, user: str,
              content: str = "vod-1", live: bool = False, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "schema_version": 1, "event_type": event_type,
            "event_timestamp": format_timestamp(NOW - timedelta(seconds=seconds_ago)), "account_id": f"acc-{user}",
            "user_id": user, "device_type": "tv", "session_id": f"ses-{user}-{content}", "content_id": content,
            "is_live": live, "position_seconds": position, **fields}


BEFORE_START = [
    _playback("rt-1", "heartbeat", 60, 10.0, user="u1", player_state="playing"),
    _playback("rt-2", "seek", 50, 600.0, user="u1", seek_from_seconds=20.0),
    _playback("rt-3", "heartbeat", 40, 300.0, user="u2", content="vod-2", player_state="playing"),
    _playback("rt-4", "heartbeat", 40, 900.0, user="u2", content="live-1", live=True, player_state="playing"),
]
WHILE_RUNNING = [
    _playback("rt-5", "pause", 30, 610.0, user="u1"),
    _playback("rt-6", "heartbeat", 55, 5.0, user="u1", player_state="playing"),  # older than rt-5: must not win
    _playback("rt-7", "play_end", 20, 1234.5, user="u3", content="vod-3"),
]


@pytest.fixture
def settings(kafka_service: Settings, redis_service: Settings, isolated: Settings, spark) -> Iterator[Settings]:
    """The test's prefixes with as many playback partitions as the session's Spark master has task slots."""
    from infra.kafka import ensure_topics

    slots = spark.sparkContext.defaultParallelism
    run = isolated.model_copy(update={"kafka_partitions": min(2, slots)})
    ensure_topics(run)
    client = run.redis_client()
    try:
        yield run
    finally:
        clear_prefix(client, run.keys.pattern())
        client.close()


def _produce(settings: Settings, events: list[dict[str, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": ",".join(settings.kafka_bootstrap_list)})
    for event in events:
        producer.produce(settings.topics.playback.name, json.dumps(event).encode(), event["account_id"].encode())
    assert producer.flush(30) == 0


def _expected(spark, settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    """What the view's transform and newest_positions say about every event, in read_resume's shape."""
    rows = QUERY.transform(events_frame(spark, BEFORE_START + WHILE_RUNNING), settings).collect()
    return {user: {content: {"position_seconds": position, "event_timestamp": utc_from_ms(ms)}
                   for content, (ms, position) in titles.items()}
            for user, titles in newest_positions(row.asDict() for row in rows).items()}


def _stored(settings: Settings, users: list[str]) -> dict[str, Any]:
    client = settings.redis_client()
    try:
        return {user: read_resume(client, settings.keys, user) for user in users}
    finally:
        client.close()


def test_realtime_query_writes_the_newest_positions_and_stops_cleanly(spark, settings):
    expected = _expected(spark, settings)
    # The hand-made truth itself: the pause wins over the older heartbeat, the live title has no position.
    assert expected["u1"]["vod-1"]["position_seconds"] == 610.0
    assert set(expected) == {"u1", "u2", "u3"} and "live-1" not in expected["u2"]

    _produce(settings, BEFORE_START)
    query = start_realtime_resume(spark, settings)
    try:
        _produce(settings, WHILE_RUNNING)
        deadline = time.monotonic() + 90
        while (stored := _stored(settings, sorted(expected))) != expected and time.monotonic() < deadline:
            assert query.exception() is None, query.exception()
            time.sleep(0.5)
        assert stored == expected
        assert query.isActive
    finally:
        query.stop()
    assert not query.isActive
    assert query.exception() is None


def test_too_few_task_slots_are_refused_with_what_to_set(spark, isolated):
    slots = spark.sparkContext.defaultParallelism
    wide = isolated.model_copy(update={"kafka_partitions": slots + 1})
    with pytest.raises(RealtimeModeError, match=rf"{slots + 1} partitions .* {slots} task slots; set "
                                                rf"REELYTICS_SPARK_MASTER=local\[{slots + 1}\]"):
        check_task_slots(spark, wide)

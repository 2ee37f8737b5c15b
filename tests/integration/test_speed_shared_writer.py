"""The shared query's writer against a real Redis: its views written side by side land exactly as written one
after another, a replayed micro-batch changes nothing, and a view that fails leaves the others written, keeps a
view that sends at least once from sending, and fails the micro-batch.

The records are simulated traffic on every topic (local Spark parses them as the stream does); the dead-letter view,
which writes to Kafka, is left out.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from simulator import SimulationConfig, simulate
from speed_layer.job import QueryPlan, plan_queries, shared_projection, shared_writer, views
from speed_layer.query import SinkContext
from speed_layer.source import parse_records
from tests.speed_support import clear_prefix
from warehouse_models.events import topic_kind
from warehouse_models.settings import Settings

pytestmark = pytest.mark.integration

START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
NAME = "speed-views@shared-writer-test"


def _frame(spark: Any, settings: Settings) -> Any:
    """Four minutes of simulated traffic as the shared query's projection of one micro-batch."""
    config = SimulationConfig(start=START, duration=timedelta(minutes=4), seed=5, users=40, titles=12, channels=2)
    rows = []
    for offset, event in enumerate(simulate(config)):
        received = datetime.fromisoformat(event["event_timestamp"]) + timedelta(seconds=1)
        rows.append((settings.topics.for_kind(topic_kind(event)).name, 0, offset, received, b"k",
                     json.dumps(event).encode()))
    frame = spark.createDataFrame(
        rows, "topic STRING, partition INT, offset LONG, timestamp TIMESTAMP, key BINARY, value BINARY")
    return parse_records(frame).cache()


def _plan(*extra: Any) -> QueryPlan:
    (plan,) = [p for p in plan_queries(views()) if p.shared]
    return QueryPlan(plan.name, (*extra, *(v for v in plan.views if v.name != "dead_letters")))


def _value(client: Any, key: bytes) -> Any:
    kind = client.type(key).decode()
    if kind == "hash":  # when a trending window was computed is the clock's, not the events'
        return {field: value for field, value in client.hgetall(key).items() if field != b"computed_at"}
    if kind == "set":
        return client.smembers(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "stream":  # entry ids are the time of writing: compare the entries
        return [fields for _, fields in client.xrange(key)]
    return client.get(key)


def _views_state(settings: Settings) -> dict[str, Any]:
    """Every key the views wrote, without the prefix (the progress row, with its timings, left out)."""
    client = settings.redis_client()
    prefix = settings.keys.pattern().rstrip("*")
    progress = {settings.keys.speed_progress(NAME), settings.keys.speed_queries()}
    return {key.decode().removeprefix(prefix): _value(client, key)
            for key in client.scan_iter(match=settings.keys.pattern()) if key.decode() not in progress}


@pytest.fixture
def two(redis_service: Settings, isolated: Settings) -> Any:
    """Two settings on the same topics, each with its own Redis prefix; both prefixes cleared after the test."""
    one = isolated.model_copy(update={"redis_key_prefix": isolated.redis_key_prefix + "-a",
                                      "speed_writer_threads": 4})
    other = isolated.model_copy(update={"redis_key_prefix": isolated.redis_key_prefix + "-b",
                                        "speed_writer_threads": 1})
    yield one, other
    for settings in (one, other):
        clear_prefix(settings.redis_client(), settings.keys.pattern())


def test_views_written_side_by_side_equal_views_written_in_turn(spark, two) -> None:
    side_by_side, in_turn = two
    parsed = _frame(spark, side_by_side)
    plan = _plan()
    for settings in (side_by_side, in_turn):
        shared_writer(settings, plan, NAME)(shared_projection(parsed, settings, plan), 0)
    written = _views_state(side_by_side)
    assert len(written) > 100, "the traffic wrote too few keys for the comparison to prove anything"
    assert written == _views_state(in_turn)
    # The same micro-batch again (a restart re-runs its unfinished batch): every view's fence or ordered write
    # leaves Redis as it was.
    shared_writer(side_by_side, plan, NAME)(shared_projection(parsed, side_by_side, plan), 0)
    assert _views_state(side_by_side) == written


def test_a_failing_view_fails_the_batch_after_the_others_are_written(spark, two) -> None:
    failing_settings, reference = two
    parsed = _frame(spark, failing_settings)
    (recent,) = [v for v in _plan().views if v.name == "recent"]
    sent: list[int] = []

    def explode(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
        raise RuntimeError("Redis refused the write")

    def send(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
        sent.append(ctx.batch_id)

    broken = dataclasses.replace(recent, name="broken", apply=explode)
    # Sends at least once, as the dead letters do: it must run only once every other view landed.
    at_least_once = dataclasses.replace(recent, name="sender", apply=send, repeatable=False)
    with pytest.raises(RuntimeError, match="Redis refused the write"):
        shared_writer(failing_settings, _plan(at_least_once, broken), NAME)(
            shared_projection(parsed, failing_settings, _plan(at_least_once, broken)), 0)
    assert sent == [], "a view that sends at least once ran although another view of the batch failed"
    shared_writer(reference, _plan(), NAME)(shared_projection(parsed, reference, _plan()), 0)
    # Submitted first, it failed; every other view still landed, as a run without it writes them.
    assert _views_state(failing_settings) == _views_state(reference)
    # The batch again without the failure: the sender runs, once.
    shared_writer(failing_settings, _plan(at_least_once), NAME)(
        shared_projection(parsed, failing_settings, _plan(at_least_once)), 0)
    assert sent == [0]

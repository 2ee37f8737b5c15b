"""One definition, two reductions: the shared query's Arrow rows equal Spark's for every view (local Spark).

Contract: for every view of the shared query, the rows its ``apply`` gets in the stream (the shared projection
collected through Arrow, then :func:`~warehouse_models.metrics.contributions.reduce_table`) are the rows of the
same contributions reduced by Spark on the view's own frame (:func:`~warehouse_models.metrics.contributions.
reduce_frame`, the batch layer's path): the valid events of its topics, or the refused records for dead letters.
The records are simulated traffic on every topic plus records a foreign producer could write (broken JSON, wrong
types, an unknown field), so nulls, arrays and empty groups all occur.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from simulator import SimulationConfig, simulate
from speed_layer.job import QueryPlan, plan_queries, shared_projection, views
from speed_layer.lateness import late_mask, lateness_rows
from speed_layer.source import parse_records, valid_events
from warehouse_models.events import topic_kind
from warehouse_models.metrics.contributions import reduce_frame, reduce_table
from warehouse_models.settings import Settings

START = datetime(2026, 3, 2, 20, 0, tzinfo=timezone.utc)
SETTINGS = Settings()


def _records() -> list[tuple[str, int, int, datetime, bytes, bytes]]:
    config = SimulationConfig(start=START, duration=timedelta(minutes=4), seed=11, users=40, titles=12, channels=2)
    topics = SETTINGS.topics
    rows: list[tuple[str, int, int, datetime, bytes, bytes]] = []
    for offset, event in enumerate(simulate(config)):
        received = datetime.fromisoformat(event["event_timestamp"]) + timedelta(seconds=1)
        rows.append((topics.for_kind(topic_kind(event)).name, 0, offset, received, b"k",
                     json.dumps(event).encode()))
    heartbeat = next(json.loads(r[5]) for r in rows if json.loads(r[5])["event_type"] == "heartbeat")
    foreign = [b"not json", b"", {**heartbeat, "colour": "red"}, {**heartbeat, "position_seconds": "12"},
               {**heartbeat, "event_timestamp": "2026-03-02T20:01:00"}, {**heartbeat, "user_id": 7}]
    playback = topics.for_kind(topic_kind(heartbeat)).name
    for i, record in enumerate(foreign):
        raw = record if isinstance(record, bytes) else json.dumps(record).encode()
        rows.append((playback, 1, i, START + timedelta(minutes=2), b"k", raw))
    return rows


@pytest.fixture(scope="module")
def batch(spark) -> tuple[Any, Any, QueryPlan]:
    """The parsed records (a batch frame) and their shared projection collected through Arrow."""
    frame = spark.createDataFrame(
        _records(), "topic STRING, partition INT, offset LONG, timestamp TIMESTAMP, key BINARY, value BINARY")
    parsed = parse_records(frame).cache()
    (plan,) = [p for p in plan_queries(views()) if p.shared]
    return parsed, shared_projection(parsed, SETTINGS, plan).toArrow(), plan


def _canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True, default=repr) for row in rows)


@pytest.mark.parametrize("name", [v.name for v in views() if not v.stateful])
def test_arrow_and_spark_reduce_a_view_to_the_same_rows(batch, name: str) -> None:
    from pyspark.sql import functions as F

    parsed, table, plan = batch
    (view,) = [v for v in plan.views if v.name == name]
    assert view.contributions is not None
    topics = sorted(SETTINGS.topics.for_kind(k).name for k in view.topics)
    own = parsed if view.reads == "records" else valid_events(parsed)
    spark_rows = [row.asDict(recursive=True)
                  for row in reduce_frame(own.where(F.col("kafka_topic").isin(topics)), view.contributions).collect()]
    arrow_rows = reduce_table(table, view.name, view.contributions)
    assert arrow_rows, f"the corpus gives {name} no rows: the comparison would prove nothing"
    assert _canonical(arrow_rows) == _canonical(spark_rows)


def test_the_dead_letter_view_gets_each_refused_record_once(batch) -> None:
    parsed, table, plan = batch
    (view,) = [v for v in plan.views if v.name == "dead_letters"]
    assert view.contributions is not None
    letters = reduce_table(table, view.name, view.contributions)
    assert sorted((r["kafka_partition"], r["kafka_offset"]) for r in letters) == [(1, i) for i in range(6)]


def test_the_late_cut_counts_per_topic_and_keeps_the_newer_events(batch) -> None:
    from pyspark.sql import functions as F

    parsed, table, plan = batch
    playback = SETTINGS.topics.for_kind(plan.views[0].topics[0]).name
    cut_ms = int((START + timedelta(minutes=2)).timestamp() * 1000)
    late = late_mask(table, {playback: cut_ms})
    per_topic = {row["kafka_topic"]: row for row in lateness_rows(table, late)}
    events = [row.asDict() for row in parsed.where(F.col("violation").isNull()).select(
        "kafka_topic", F.unix_millis("event_timestamp").alias("ms")).collect()]
    assert per_topic[playback]["late"] == sum(1 for e in events if e["kafka_topic"] == playback and e["ms"] < cut_ms)
    assert per_topic[playback]["late"] > 0
    newest: dict[str, int] = {}
    for e in events:
        newest[e["kafka_topic"]] = max(newest.get(e["kafka_topic"], e["ms"]), e["ms"])
    assert {topic: row["newest"] for topic, row in per_topic.items()} == newest
    assert all(row["late"] == 0 for topic, row in per_topic.items() if topic != playback)


"""Silver and the gold star schema against real Kafka, Spark and Delta, compared with the simulator's truth.

Contract: after a simulated world goes through Kafka and bronze, the silver build of the hours that bronze
reports as touched holds each viewer event once (a record produced twice and a view_end replayed appear once),
and the fact table's watch seconds per user and per title, events per type and impressions/clicks per rail and
button equal the ground truth; the dimensions hold every title and every user; building the same hours, dates
and dimensions again leaves every table identical, through an overwrite rather than an append; an event that
arrives after its hour was built re-opens exactly that hour, and the rebuilt hour and date hold it once.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from batch_layer.bronze.job import run_bronze_available_now
from batch_layer.gold.job import build_dims, build_fact, dates_of_hours
from batch_layer.silver.job import affected_hours, build_silver
from batch_layer.silver.transform import LATE_GRACE
from simulator import SimulationConfig, ground_truth, simulate
from simulator.sinks import write_kafka
from tests.warehouse_support import assert_same_as_version, table_versions
from warehouse_models.events import CATALOG_TYPES, encode, format_timestamp, kafka_key, parse_timestamp
from warehouse_models.settings import Settings
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, SILVER_EVENTS

pytestmark = pytest.mark.integration

_CATALOG = {t.value for t in CATALOG_TYPES}


def _produce(settings: Settings, events: list[dict[str, Any]], kind: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka_producer_config())
    try:
        topic = settings.topics.for_kind(kind).name
        for event in events:
            producer.send(topic, value=encode(event), key=kafka_key(event))
        producer.flush()
    finally:
        producer.close()


def _view_end(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A view_end for the first session with a play_end, as the speed layer would derive it."""
    end = next(e for e in events if e["event_type"] == "play_end")
    return {
        "event_id": f"ve-{end['session_id']}", "schema_version": 1, "event_type": "view_end",
        "event_timestamp": end["event_timestamp"], "account_id": end["account_id"], "user_id": end["user_id"],
        "session_id": end["session_id"], "content_id": end["content_id"], "watch_seconds": 30.0,
        "end_reason": "explicit_end",
    }


def test_silver_and_gold_equal_the_ground_truth_and_rebuild_identically(kafka_service, isolated, spark):
    from pyspark.sql import functions as F

    from infra.kafka import ensure_topics

    settings = isolated
    ensure_topics(settings)
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=25)
    config = SimulationConfig(start=start, duration=timedelta(minutes=20), users=150)
    events = list(simulate(config))
    truth = ground_truth(events, config=config)
    write_kafka(events, settings)
    duplicate = next(e for e in events if e["event_type"] == "heartbeat")
    _produce(settings, [duplicate], "playback")
    view_end = _view_end(events)
    _produce(settings, [view_end, view_end], "derived")  # a replayed micro-batch sends it again

    before_bronze = datetime.now(timezone.utc) - timedelta(seconds=1)
    run_bronze_available_now(settings, spark, timeout_s=300)
    hours = affected_hours(spark, settings, since=before_bronze)
    viewer = [e for e in events if e["event_type"] not in _CATALOG]
    expected_hours = {parse_timestamp(e["event_timestamp"]).replace(minute=0, second=0, microsecond=0)
                      for e in viewer}
    assert hours == expected_hours

    silver_counts = build_silver(spark, settings, hours=hours)
    fact_counts = build_fact(spark, settings, dates=dates_of_hours(hours))
    dim_counts = build_dims(spark, settings)

    # Silver: each event once, the duplicate and the replayed view_end included.
    silver = spark.read.format("delta").load(SILVER_EVENTS.path(settings.delta_root_uri))
    assert silver.columns == SILVER_EVENTS.column_names
    assert silver_counts["hours"] == len(hours)
    assert silver_counts["rows"] == silver.count() == len(viewer) + 1
    assert silver.where(F.col("event_id") == duplicate["event_id"]).count() == 1
    assert silver.where(F.col("event_id") == view_end["event_id"]).count() == 1
    assert silver.select("event_id").distinct().count() == silver.count()
    closes = F.timestamp_add("SECOND", F.lit(3600 + int(LATE_GRACE.total_seconds())), F.col("event_hour"))
    assert silver.where(F.col("is_late") != (F.col("kafka_timestamp") >= closes)).count() == 0
    assert silver_counts["late_rows"] == silver.where(F.col("is_late")).count()
    session_rows = silver.where(F.col("session_id").isNotNull())
    assert session_rows.where(F.col("account_id").isNull() | F.col("user_id").isNull()
                              | F.col("content_id").isNull()).count() == 0

    # Gold fact: totals equal the ground truth.
    fact = spark.read.format("delta").load(FACT_STREAM_EVENTS.path(settings.delta_root_uri))
    assert fact.columns == FACT_STREAM_EVENTS.column_names
    assert fact_counts["rows"] == fact.count() == len(viewer) + 1
    per_user = {r["user_id"]: r["w"] for r in fact.groupBy("user_id").agg(F.sum("watch_seconds").alias("w"))
                .where(F.col("w") > 0).collect()}
    assert per_user == {u: float(w) for u, w in truth["watch_seconds_per_user"].items()}
    per_content = {r["content_id"]: r["w"] for r in fact.groupBy("content_id")
                   .agg(F.sum("watch_seconds").alias("w")).where(F.col("w") > 0).collect()}
    assert per_content == {c: float(w) for c, w in truth["watch_seconds_per_content"].items()}
    per_type = {r["event_type"]: r["count"] for r in fact.groupBy("event_type").count().collect()}
    expected_types = Counter({t: n for t, n in truth["events_per_type"].items() if t not in _CATALOG})
    expected_types["view_end"] += 1
    assert per_type == dict(expected_types)
    ctr = sorted(
        (r["rail_id"], r["button_id"], r["impressions"], r["clicks"])
        for r in fact.where(F.col("event_type").isin("impression", "click")).groupBy("rail_id", "button_id")
        .agg(F.count_if(F.col("event_type") == "impression").alias("impressions"),
             F.count_if(F.col("event_type") == "click").alias("clicks")).collect()
    )
    assert ctr == sorted((c["rail_id"], c["button_id"], c["impressions"], c["clicks"]) for c in truth["ctr"])
    assert fact.where(F.col("event_type") == "view_end").select("session_watch_seconds").first()[0] == 30.0

    # Dimensions: every title and every user, one current version each.
    assert dim_counts == {"content_rows": truth["events_per_type"]["content_upsert"],
                          "user_rows": config.users, "current_users": config.users}
    users = spark.read.format("delta").load(DIM_USERS.path(settings.delta_root_uri))
    assert users.select("user_key").distinct().count() == config.users
    fact_users = fact.select("user_id").distinct()
    assert fact_users.join(users, "user_id", "left_anti").count() == 0

    # A second run of the same hours, dates and dimensions: identical tables, written by an overwrite.
    rebuilt = (SILVER_EVENTS, FACT_STREAM_EVENTS, DIM_CONTENT, DIM_USERS)
    versions = table_versions(spark, settings, rebuilt)
    assert build_silver(spark, settings, hours=hours) == silver_counts
    assert build_fact(spark, settings, dates=dates_of_hours(hours)) == fact_counts
    assert build_dims(spark, settings) == dim_counts
    for spec in rebuilt:
        assert_same_as_version(spark, settings, spec, versions[spec.name])

    # A late event: bronze rows ingested since a point re-open the (already built) hour of their event time.
    late = {**duplicate, "event_id": "ev-late-1", "session_id": "ses-late-1", "player_state": "playing",
            "event_timestamp": format_timestamp(min(expected_hours))}
    first_hour = F.col("event_hour") == F.lit(min(expected_hours))
    first_hour_rows = spark.read.format("delta").load(SILVER_EVENTS.path(settings.delta_root_uri)) \
        .where(first_hour).count()
    before_late = datetime.now(timezone.utc) - timedelta(seconds=1)
    _produce(settings, [late], "playback")
    run_bronze_available_now(settings, spark, timeout_s=300)
    late_hours = affected_hours(spark, settings, since=before_late)
    assert late_hours == {min(expected_hours)}
    assert build_silver(spark, settings, hours=late_hours)["rows"] == first_hour_rows + 1
    build_fact(spark, settings, dates=dates_of_hours(late_hours))
    silver = spark.read.format("delta").load(SILVER_EVENTS.path(settings.delta_root_uri))
    assert silver.count() == silver_counts["rows"] + 1
    assert [r["event_hour"] for r in silver.where(F.col("event_id") == "ev-late-1").collect()] == [
        min(expected_hours).replace(tzinfo=None)]
    fact = spark.read.format("delta").load(FACT_STREAM_EVENTS.path(settings.delta_root_uri))
    assert fact.count() == fact_counts["rows"] + 1
    watched = fact.where(F.col("user_id") == late["user_id"]).agg(F.sum("watch_seconds")).first()[0]
    assert watched == truth["watch_seconds_per_user"].get(late["user_id"], 0) + 10.0

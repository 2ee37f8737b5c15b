"""Silver and the gold star schema against real Kafka, Spark and Delta, compared with the simulator's truth.

Contract: after a simulated world goes through Kafka, bronze and the Dagster jobs (the shared warehouse), silver
holds each viewer event once (a record produced twice and a view_end replayed appear once), bronze reports
exactly the hours it holds as touched, and the fact table's watch seconds per user and per title, events per type
and impressions/clicks per rail and button equal the ground truth; the dimensions hold every title and every user.
On a copy of the warehouse, an event that arrives after its hour was built re-opens exactly that hour, and the
rebuilt hour and date hold it once. (Rebuilding the same partitions again is checked through Dagster in
``test_dagster_rebuild``.)
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from batch_layer.bronze.job import run_bronze_available_now
from batch_layer.gold.job import build_fact, dates_of_hours
from batch_layer.silver.job import affected_hours, build_silver
from batch_layer.silver.transform import LATE_GRACE
from tests.warehouse_support import produce
from warehouse_models.events import CATALOG_TYPES, format_timestamp, parse_timestamp
from warehouse_models.tables import DIM_USERS, FACT_STREAM_EVENTS, SILVER_EVENTS

_CATALOG = {t.value for t in CATALOG_TYPES}


def test_silver_and_gold_equal_the_ground_truth(warehouse, spark):
    from pyspark.sql import functions as F

    settings, truth = warehouse.settings, warehouse.world.truth
    viewer = warehouse.viewer_events
    hours = affected_hours(spark, settings, since=warehouse.before_bronze)
    expected_hours = {parse_timestamp(e["event_timestamp"]).replace(minute=0, second=0, microsecond=0)
                      for e in viewer}
    assert hours == expected_hours == {warehouse.world.hour}

    # Silver: each event once, the duplicate and the replayed view_end included.
    silver = spark.read.format("delta").load(SILVER_EVENTS.path(settings.delta_root_uri))
    assert silver.columns == SILVER_EVENTS.column_names
    assert silver.count() == warehouse.fact_rows
    assert silver.where(F.col("event_id") == warehouse.duplicate["event_id"]).count() == 1
    assert silver.where(F.col("event_id") == warehouse.view_end["event_id"]).count() == 1
    assert silver.select("event_id").distinct().count() == silver.count()
    closes = F.timestamp_add("SECOND", F.lit(3600 + int(LATE_GRACE.total_seconds())), F.col("event_hour"))
    assert silver.where(F.col("is_late") != (F.col("kafka_timestamp") >= closes)).count() == 0
    session_rows = silver.where(F.col("session_id").isNotNull())
    assert session_rows.where(F.col("account_id").isNull() | F.col("user_id").isNull()
                              | F.col("content_id").isNull()).count() == 0

    # Gold fact: totals equal the ground truth.
    fact = spark.read.format("delta").load(FACT_STREAM_EVENTS.path(settings.delta_root_uri))
    assert fact.columns == FACT_STREAM_EVENTS.column_names
    assert fact.count() == warehouse.fact_rows
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
    users = spark.read.format("delta").load(DIM_USERS.path(settings.delta_root_uri))
    assert users.count() == users.where(F.col("is_current")).count() == warehouse.world.config.users
    assert users.select("user_key").distinct().count() == warehouse.world.config.users
    fact_users = fact.select("user_id").distinct()
    assert fact_users.join(users, "user_id", "left_anti").count() == 0


def test_a_late_event_reopens_exactly_its_hour(warehouse, spark, tmp_path):
    from pyspark.sql import functions as F

    from infra.kafka import ensure_topics

    settings = warehouse.copy(tmp_path)
    hour = warehouse.world.hour
    silver_path, fact_path = SILVER_EVENTS.path(settings.delta_root_uri), FACT_STREAM_EVENTS.path(
        settings.delta_root_uri)
    hour_rows = spark.read.format("delta").load(silver_path).where(F.col("event_hour") == F.lit(hour)).count()
    late = {**warehouse.duplicate, "event_id": "ev-late-1", "session_id": "ses-late-1", "player_state": "playing",
            "event_timestamp": format_timestamp(hour)}
    before_late = datetime.now(timezone.utc) - timedelta(seconds=1)
    ensure_topics(settings)
    produce(settings, [late], "playback")
    run_bronze_available_now(settings, spark, timeout_s=300)
    late_hours = affected_hours(spark, settings, since=before_late)
    assert late_hours == {hour}
    assert build_silver(spark, settings, hours=late_hours)["rows"] == hour_rows + 1
    build_fact(spark, settings, dates=dates_of_hours(late_hours))
    silver = spark.read.format("delta").load(silver_path)
    assert silver.count() == warehouse.fact_rows + 1
    assert [r["event_hour"] for r in silver.where(F.col("event_id") == "ev-late-1").collect()] == [
        hour.replace(tzinfo=None)]
    fact = spark.read.format("delta").load(fact_path)
    assert fact.count() == warehouse.fact_rows + 1
    watched = fact.where(F.col("user_id") == late["user_id"]).agg(F.sum("watch_seconds")).first()[0]
    assert watched == warehouse.world.truth["watch_seconds_per_user"].get(late["user_id"], 0) + 10.0
    # The shared warehouse itself is untouched.
    shared = spark.read.format("delta").load(SILVER_EVENTS.path(warehouse.settings.delta_root_uri))
    assert shared.where(F.col("event_id") == "ev-late-1").count() == 0

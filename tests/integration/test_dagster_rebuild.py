"""One hourly partition and its date, materialized through Dagster twice, give identical tables equal to the truth.

Contract: with a simulated world of a few minutes in one hour of yesterday (UTC) in Kafka, materializing the hourly
partition (bronze -> silver_events -> fact_stream_events) and then the daily partition (dim_content, dim_users and
the marts) with Dagster, Spark and Delta, and then both again, leaves every table with exactly the rows of the first
run, rewritten by an overwrite (never appended twice); the fact table's and the engagement mart's watch seconds
per user, and the fact's events per type, equal the simulator's ground truth.
"""

from __future__ import annotations

import pytest

from tests.warehouse_support import (
    assert_same_as_version,
    positive_sums,
    simulate_into_kafka,
    table_versions,
    use_settings,
    yesterday_hour,
)
from warehouse_models.events import CATALOG_TYPES
from warehouse_models.marts import MART_TABLES, MART_USER_ENGAGEMENT_DAILY
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, SILVER_EVENTS

pytestmark = pytest.mark.integration

_CATALOG = {t.value for t in CATALOG_TYPES}


@pytest.mark.timeout(2400)  # a dozen Spark jobs per run; minutes each on a busy two-core machine
def test_an_hour_and_its_date_rebuild_identically_through_dagster(kafka_service, isolated, spark, monkeypatch,
                                                                  tmp_path):
    from dagster import AssetKey, DagsterInstance, materialize
    from pyspark.sql import functions as F

    from orchestration.defs.warehouse.assets import DAILY_ASSETS, HOURLY_ASSETS
    from orchestration.defs.warehouse.partitions import hour_key
    from orchestration.resources import ReelyticsSettingsResource, SparkResource

    use_settings(monkeypatch, isolated)
    world = simulate_into_kafka(isolated, yesterday_hour(14))
    hour_partition, day_partition = hour_key(world.hour), world.hour.date().isoformat()
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    built = [spec for spec in (SILVER_EVENTS, FACT_STREAM_EVENTS, DIM_CONTENT, DIM_USERS, *MART_TABLES)
             if spec.name != "mart_ctr_daily" or "rail_id" in FACT_STREAM_EVENTS.column_names]

    versions: dict[str, int] = {}
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        for attempt in (1, 2):
            hourly = materialize(HOURLY_ASSETS, partition_key=hour_partition, resources=resources, instance=instance)
            assert hourly.success, f"hourly run {attempt} failed"
            daily = materialize(DAILY_ASSETS, partition_key=day_partition, resources=resources, instance=instance)
            assert daily.success, f"daily run {attempt} failed"
            if attempt == 1:
                versions = table_versions(spark, isolated, tuple(built))
                first_fact_rows = hourly.asset_materializations_for_node("fact_stream_events")[0].metadata["rows"]
        assert hourly.asset_materializations_for_node("fact_stream_events")[0].metadata["rows"] == first_fact_rows
        for spec in built:
            assert_same_as_version(spark, isolated, spec, versions[spec.name])
        events = instance.fetch_materializations(AssetKey("mart_user_engagement_daily"), limit=10).records
        assert [e.partition_key for e in events] == [day_partition, day_partition]

        # Gold totals against the ground truth.
        root = isolated.delta_root_uri
        fact = spark.read.format("delta").load(FACT_STREAM_EVENTS.path(root))
        viewer = [e for e in world.events if e["event_type"] not in _CATALOG]
        assert fact.count() == len(viewer) == first_fact_rows.value
        per_user = positive_sums([tuple(r) for r in fact.groupBy("user_id").agg(F.sum("watch_seconds")).collect()])
        assert per_user == {u: float(w) for u, w in world.truth["watch_seconds_per_user"].items()}
        per_type = {r["event_type"]: r["count"] for r in fact.groupBy("event_type").count().collect()}
        assert per_type == {t: n for t, n in world.truth["events_per_type"].items() if t not in _CATALOG}
        engagement = spark.read.format("delta").load(MART_USER_ENGAGEMENT_DAILY.path(root))
        assert positive_sums([(r["user_id"], r["watch_seconds"]) for r in engagement.collect()]) == per_user

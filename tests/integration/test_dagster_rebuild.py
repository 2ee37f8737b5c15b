"""An hourly partition and its date, materialized through Dagster again, give identical tables equal to the truth.

Contract: on a copy of the shared warehouse (its hour and date built once through Dagster's hourly and daily jobs),
materializing the hourly partition (bronze -> silver_events -> fact_stream_events) and then the daily partition
(dim_content, dim_users and the marts) again leaves every table with exactly the rows of the first build,
rewritten by an overwrite (never appended twice); the fact table's and the engagement mart's watch seconds per
user, and the fact's events per type, equal the simulator's ground truth.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.warehouse_support import BUILT_TABLES, assert_same_as_version, positive_sums, use_settings
from warehouse_models.events import CATALOG_TYPES
from warehouse_models.marts import MART_USER_ENGAGEMENT_DAILY
from warehouse_models.tables import FACT_STREAM_EVENTS

_CATALOG = {t.value for t in CATALOG_TYPES}


@pytest.mark.timeout(1800)  # a dozen Spark jobs; minutes on a busy two-core machine
def test_an_hour_and_its_date_rebuild_identically_through_dagster(warehouse, spark, monkeypatch, tmp_path):
    from dagster import AssetKey, DagsterInstance, materialize
    from pyspark.sql import functions as F

    from orchestration.defs.warehouse.assets import DAILY_ASSETS, HOURLY_ASSETS
    from orchestration.resources import ReelyticsSettingsResource, SparkResource

    settings = warehouse.copy(tmp_path)
    use_settings(monkeypatch, settings)
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    built = [spec for spec in BUILT_TABLES
             if spec.name != "mart_ctr_daily" or "rail_id" in FACT_STREAM_EVENTS.column_names]

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        hourly = materialize(HOURLY_ASSETS, partition_key=warehouse.hour_key, resources=resources, instance=instance)
        assert hourly.success
        daily = materialize(DAILY_ASSETS, partition_key=warehouse.day_key, resources=resources, instance=instance)
        assert daily.success
        events = instance.fetch_materializations(AssetKey("mart_user_engagement_daily"), limit=10).records
        assert [e.partition_key for e in events] == [warehouse.day_key]
    assert hourly.asset_materializations_for_node("bronze")[0].metadata["rows_added"].value == 0
    fact_rows = hourly.asset_materializations_for_node("fact_stream_events")[0].metadata["rows"].value
    assert fact_rows == warehouse.fact_rows
    for spec in built:
        assert_same_as_version(spark, settings, spec, warehouse.versions[spec.name])

    # Gold totals against the ground truth.
    root, truth = settings.delta_root_uri, warehouse.world.truth
    fact = spark.read.format("delta").load(FACT_STREAM_EVENTS.path(root))
    assert fact.count() == fact_rows
    per_user = positive_sums([tuple(r) for r in fact.groupBy("user_id").agg(F.sum("watch_seconds")).collect()])
    assert per_user == {u: float(w) for u, w in truth["watch_seconds_per_user"].items()}
    per_type = {r["event_type"]: r["count"] for r in fact.groupBy("event_type").count().collect()}
    expected = Counter({t: n for t, n in truth["events_per_type"].items() if t not in _CATALOG})
    expected["view_end"] += 1  # the replayed view_end, once
    assert per_type == dict(expected)
    engagement = spark.read.format("delta").load(MART_USER_ENGAGEMENT_DAILY.path(root))
    assert positive_sums([(r["user_id"], r["watch_seconds"]) for r in engagement.collect()]) == per_user

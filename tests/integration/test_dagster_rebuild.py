"""An hourly partition and its date, materialized through Dagster again, give identical tables equal to the truth.

Contract: on a copy of the shared warehouse (its hour and date built once through Dagster's hourly and daily jobs),
materializing the hourly partitions of its hour and the one before (or after) as one range run, as a backfill runs
them (bronze -> silver_events -> fact_stream_events, silver building both hours in one pass, every asset and
blocking check reporting each partition), and then the daily partition
(dim_content, dim_users and the marts) again leaves every table with exactly the rows of the first build,
rewritten by an overwrite (never appended twice); the fact table's and the engagement mart's watch seconds per
user, and the fact's events per type, equal the simulator's ground truth.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from tests.warehouse_support import BUILT_TABLES, assert_same_as_version, positive_sums, use_settings
from warehouse_models.events import CATALOG_TYPES
from warehouse_models.marts import MART_USER_ENGAGEMENT_DAILY
from warehouse_models.tables import FACT_STREAM_EVENTS

_CATALOG = {t.value for t in CATALOG_TYPES}


@pytest.mark.timeout(1800)  # a dozen Spark jobs; minutes on a busy two-core machine
def test_an_hour_and_its_date_rebuild_identically_through_dagster(warehouse, spark, monkeypatch, tmp_path):
    from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG
    from pyspark.sql import functions as F

    from orchestration.backfill import BackfillPlan, run_backfill
    from orchestration.defs.warehouse.assets import DAILY_ASSETS
    from orchestration.resources import ReelyticsSettingsResource, SparkResource

    settings = warehouse.copy(tmp_path)
    use_settings(monkeypatch, settings)
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    built = [spec for spec in BUILT_TABLES
             if spec.name != "mart_ctr_daily" or "rail_id" in FACT_STREAM_EVENTS.column_names]

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        # The hour before and the hour itself, as `reelytics backfill` runs a date's hours: one range run of the
        # hourly job (the definitions' own job, with its checks).
        # The other hour is on the same date (the hour after, when the world's hour is midnight).
        hour = warehouse.world.hour
        other = hour - timedelta(hours=1) if hour.hour > 0 else hour + timedelta(hours=1)
        hours = sorted([hour, other])
        plan = BackfillPlan(tuple(h.strftime("%Y-%m-%d-%H:00") for h in hours), ())
        backfill = run_backfill(plan, instance=instance)
        assert [(r.partition_key, r.partitions, r.success) for r in backfill.runs] == [
            ("...".join(plan.hourly_keys), 2, True)], backfill.failed
        hourly = instance.get_run_by_id(backfill.runs[0].run_id)
        assert hourly is not None and hourly.tags[ASSET_PARTITION_RANGE_END_TAG] == plan.hourly_keys[1]
        silver_runs = instance.fetch_materializations(AssetKey("silver_events"), limit=10).records
        assert sorted(e.partition_key for e in silver_runs) == list(plan.hourly_keys)
        silver = silver_runs[0].asset_materialization
        assert silver is not None
        assert silver.metadata["hours_rebuilt"].value == [h.isoformat() for h in hours]
        checks = {name: instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [AssetCheckKey(AssetKey(asset), name)]) for asset, name in
            (("silver_events", "silver_events_quality"), ("fact_stream_events", "fact_stream_events_quality"))}
        scopes = {}
        for name, latest in checks.items():
            evaluation = next(iter(latest.values())).event.dagster_event.event_specific_data
            assert evaluation.passed, name
            scopes[name] = evaluation.metadata["scope"].value
        assert scopes == {"silver_events_quality": f"event_hour {hours[0].isoformat()} .. {hours[1].isoformat()} "
                                                   "(2 hours)",
                          "fact_stream_events_quality": f"event_date {hour.date().isoformat()}"}
        bronze = instance.fetch_materializations(AssetKey("bronze"), limit=1).records[0].asset_materialization
        fact = instance.fetch_materializations(AssetKey("fact_stream_events"), limit=1).records[0].asset_materialization
        daily = materialize(DAILY_ASSETS, partition_key=warehouse.day_key, resources=resources, instance=instance)
        assert daily.success
        events = instance.fetch_materializations(AssetKey("mart_user_engagement_daily"), limit=10).records
        assert [e.partition_key for e in events] == [warehouse.day_key]
    assert bronze is not None and bronze.metadata["rows_added"].value == 0
    assert fact is not None
    fact_rows = fact.metadata["rows"].value
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

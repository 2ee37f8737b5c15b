"""The warehouse's asset checks through Dagster, on real Kafka, Spark and Delta tables.

Contract: every check is registered with the right blocking flag and partitions and is part of the jobs that build
its asset, and :data:`BLOCKING_CHECKS` names exactly the blocking ones. An hour of simulated traffic materialized
through Dagster (bronze, the dimensions, silver, the fact table and the date's marts) passes every check (the shared
warehouse, built through Dagster's jobs). On a copy of it, a bronze record that slipped past validation with a
device type outside the envelope makes silver's blocking check fail in the run that builds it, with metadata naming
the column and the value, fact_stream_events is not materialized in that run, and the publication gate
(``blocking_check_failures`` over :data:`BLOCKING_CHECKS`) names that check and why. Duplicated event ids written
into the silver partition, and a fact row whose title is not in dim_content, make the silver and fact checks fail
with the ids and the title named.
"""

from __future__ import annotations


def test_checks_are_registered_blocking_where_they_guard_and_in_the_jobs():
    from dagster import AssetCheckKey, AssetKey

    from orchestration.definitions import defs
    from orchestration.defs.warehouse.checks import BLOCKING_CHECKS, WAREHOUSE_CHECKS
    from warehouse_models.marts import MART_TABLES

    graph = defs.resolve_asset_graph()
    warehouse = {key for checks in WAREHOUSE_CHECKS for key in checks.check_keys}
    assert warehouse <= set(graph.asset_check_keys)
    blocking = {(k.asset_key.to_user_string(), k.name) for k in warehouse if graph.get(k).blocking}
    assert blocking == set(BLOCKING_CHECKS)
    assert len(BLOCKING_CHECKS) == 4 + len(MART_TABLES)
    freshness = AssetCheckKey(AssetKey("silver_events"), "silver_events_freshness")
    assert freshness in graph.asset_check_keys and not graph.get(freshness).blocking
    for job, expected in (("warehouse_hourly", {"silver_events_quality", "silver_events_freshness",
                                                "fact_stream_events_quality"}),
                          ("warehouse_daily", {"dim_content_quality", "dim_users_quality", "marts_quality"})):
        nodes = {n.name for n in defs.resolve_job_def(job).graph.node_defs}
        assert all(any(n.endswith(name) for n in nodes) for name in expected), (job, nodes)


def _evaluations(result) -> dict[str, object]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_every_check_passed_when_the_warehouse_was_built(warehouse):
    from dagster import AssetCheckKey, AssetKey

    from orchestration.backfill import instance_for
    from orchestration.defs.publish.checks import blocking_check_failures
    from orchestration.defs.warehouse.checks import BLOCKING_CHECKS, WAREHOUSE_CHECKS, mart_check_name
    from warehouse_models.marts import MART_TABLES

    keys = [key for checks in WAREHOUSE_CHECKS for key in checks.check_keys]
    with instance_for(warehouse.settings.dagster_home_dir) as instance:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        materialized = instance.get_latest_materialization_event(AssetKey("silver_events"))
        assert blocking_check_failures(instance, BLOCKING_CHECKS) == []
    passed = {key.name: record.evaluation for key, record in latest.items() if record is not None}
    assert set(passed) == {"dim_content_quality", "dim_users_quality", "silver_events_quality",
                           "silver_events_freshness", "fact_stream_events_quality",
                           *(mart_check_name(spec.name) for spec in MART_TABLES)}
    for name, evaluation in passed.items():
        assert evaluation.passed, (name, evaluation.metadata["why"].value)
        assert evaluation.metadata["failed_expectations"].value == 0
    assert materialized is not None
    silver_rows = materialized.asset_materialization.metadata["rows"].value
    assert passed["silver_events_quality"].metadata["rows_checked"].value == silver_rows == warehouse.fact_rows
    assert passed["fact_stream_events_quality"].metadata["rows_checked"].value == silver_rows
    assert latest[AssetCheckKey(AssetKey("silver_events"), "silver_events_quality")].partition == warehouse.hour_key
    engagement = latest[AssetCheckKey(AssetKey("mart_user_engagement_daily"),
                                      "mart_user_engagement_daily_quality")]
    assert engagement.partition == warehouse.day_key
    assert passed["mart_user_engagement_daily_quality"].metadata["rows_checked"].value > 0


def test_corrupted_rows_fail_the_checks_and_block(warehouse, spark, monkeypatch, tmp_path):
    from dagster import DagsterInstance, materialize
    from pyspark.sql import functions as F

    from batch_layer.quality.fact_stream_events import check_fact_date
    from batch_layer.quality.silver_events import check_silver_hour
    from orchestration.defs.publish.checks import blocking_check_failures
    from orchestration.defs.warehouse.assets import fact_stream_events, silver_events
    from orchestration.defs.warehouse.checks import (
        BLOCKING_CHECKS,
        fact_stream_events_quality,
        silver_events_freshness,
        silver_events_quality,
    )
    from orchestration.resources import ReelyticsSettingsResource, SparkResource
    from tests.warehouse_support import use_settings
    from warehouse_models.tables import BRONZE_PLAYBACK, FACT_STREAM_EVENTS, SESSION_IDENTITY, SILVER_EVENTS

    settings = warehouse.copy(tmp_path)
    use_settings(monkeypatch, settings)
    hour, day, key = warehouse.world.hour, warehouse.world.hour.date(), warehouse.hour_key
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    hourly = [silver_events, fact_stream_events, silver_events_quality, silver_events_freshness,
              fact_stream_events_quality]

    # A record in bronze that bypassed the collector's validation: a device type outside the envelope. It is a
    # copy of an event that carries every identity field, in a session of its own: in the copied event's session
    # it could be the earliest event and so lend "toaster" to that session's slimmed events in silver (more than
    # one bad row), and a slimmed copy alone in its session would leave identity fields empty.
    bronze_path = BRONZE_PLAYBACK.path(settings.delta_root_uri)
    good = (spark.read.format("delta").load(bronze_path)
            .where(F.col("parse_error").isNull() & (F.date_trunc("hour", "event_timestamp") == F.lit(hour)))
            .dropna(subset=list(SESSION_IDENTITY)).orderBy("event_id").limit(1))
    good.withColumns({"event_id": F.lit("corrupt-device-1"), "session_id": F.lit("corrupt-session-1"),
                      "device_type": F.lit("toaster"), "kafka_offset": F.lit(10**9).cast("long")}) \
        .write.format("delta").mode("append").save(bronze_path)

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        blocked = materialize(hourly, partition_key=key, resources=resources, instance=instance,
                              raise_on_error=False)
        stopping = blocking_check_failures(instance, BLOCKING_CHECKS)
    (stop,) = stopping
    assert stop.startswith("silver_events / silver_events_quality: ") and "device_type=toaster" in stop
    assert not blocked.success
    failed = _evaluations(blocked)["silver_events_quality"]
    assert not failed.passed and failed.severity.value == "ERROR" and failed.blocking
    failures = failed.metadata["failures"].data
    device = next(f for f in failures if f["column"] == "device_type")
    assert device["bad_rows"] == 1 and device["samples"] == ["device_type=toaster (event_id=corrupt-device-1)"]
    assert "toaster" in failed.metadata["why"].value
    materialized = {m.asset_key.to_user_string() for m in blocked.get_asset_materialization_events()}
    assert materialized == {"silver_events"}, "fact_stream_events must not be built on a failed silver hour"

    # Duplicated event ids written straight into the silver partition.
    silver_path = SILVER_EVENTS.path(settings.delta_root_uri)
    copies = spark.read.format("delta").load(silver_path).where(F.col("event_hour") == F.lit(hour)) \
        .orderBy("event_id").limit(2)
    copied_ids = sorted(r["event_id"] for r in copies.collect())
    copies.write.format("delta").mode("append").save(silver_path)
    outcome = check_silver_hour(settings, hour)
    unique = next(f for f in outcome.failures if f.rule == "event_id is unique within the event hour")
    assert unique.bad_rows == 4 and {s.split("=", 1)[1] for s in unique.samples} == set(copied_ids)

    # A fact row whose title the content dimension does not know.
    fact_path = FACT_STREAM_EVENTS.path(settings.delta_root_uri)
    spark.read.format("delta").load(fact_path).where(F.col("event_date") == F.lit(day)).limit(1) \
        .withColumns({"event_id": F.lit("corrupt-title-1"), "content_id": F.lit("ghost-title")}) \
        .write.format("delta").mode("append").save(fact_path)
    outcome = check_fact_date(settings, day)
    titles = next(f for f in outcome.failures if f.column == "content_id")
    assert titles.bad_rows == 1 and titles.samples == ("content_id=ghost-title (event_id=corrupt-title-1)",)
    assert "content_id is in dim_content" in outcome.why

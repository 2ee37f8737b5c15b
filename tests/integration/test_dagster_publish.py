"""The publish domain's Dagster definitions, and ``batch_views_redis`` materialized against real Spark, Delta and Redis.

Contract: ``batch_views_redis`` is hourly, drawn after ``fact_stream_events`` and every mart, carries the Spark
tag, and runs on the ``publish_hourly`` schedule with ``reconciliation`` (whose check is
``reconciliation_drift``). Materialized for the hour 12:00 on a hand-made fact table it publishes W = 13:00 with
the version, rows per view and seconds as metadata; re-running the older hour 11:00 publishes a new version whose
W stays 13:00.
"""

from __future__ import annotations

from datetime import timedelta

from dagster import AssetCheckResult  # at module level: Dagster resolves the test checks' string annotations here


def test_publish_definitions():
    from dagster import AssetCheckKey, AssetKey, Definitions, HourlyPartitionsDefinition

    from orchestration.definitions import defs
    from warehouse_models.marts import MART_TABLES

    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    parents = {p.to_user_string() for p in graph.get(AssetKey("batch_views_redis")).parent_keys}
    assert parents == {"fact_stream_events", *(spec.name for spec in MART_TABLES)}
    assert {p.to_user_string() for p in graph.get(AssetKey("reconciliation")).parent_keys} == {"fact_stream_events"}
    for key in ("batch_views_redis", "reconciliation"):
        assert isinstance(graph.get(AssetKey(key)).partitions_def, HourlyPartitionsDefinition), key
        assert defs.get_assets_def(key).op.tags.get("reelytics/spark") == "true", key
    assert AssetCheckKey(AssetKey("reconciliation"), "reconciliation_drift") in graph.asset_check_keys
    crons = {s.name: s.cron_schedule for s in defs.schedules}
    assert crons["publish_hourly_schedule"] == "25 * * * *"
    assert set(defs.get_job_def("publish_hourly").asset_layer.executable_asset_keys) >= {
        AssetKey("batch_views_redis"), AssetKey("reconciliation")}


def test_batch_views_redis_publishes_w_and_never_moves_it_back(redis_service, isolated, spark, monkeypatch,
                                                               tmp_path):
    from dagster import DagsterInstance, materialize

    from batch_layer.marts.sessions import conform
    from orchestration.defs.publish.assets import batch_views_redis
    from orchestration.defs.warehouse.partitions import hour_key
    from orchestration.resources import ReelyticsSettingsResource, SparkResource
    from serving.views.batch import read_batch_user_totals
    from tests.spark.test_marts import SHARED, T0, dim_content, frame
    from warehouse_models.batch_versions import current_version
    from warehouse_models.settings import settings_environment
    from warehouse_models.tables import DIM_CONTENT, FACT_STREAM_EVENTS

    root = isolated.delta_root_uri
    conform(frame(spark, SHARED), FACT_STREAM_EVENTS).write.format("delta").partitionBy("event_date") \
        .save(FACT_STREAM_EVENTS.path(root))
    conform(dim_content(spark), DIM_CONTENT).write.format("delta").save(DIM_CONTENT.path(root))
    for name, value in settings_environment(isolated).items():
        monkeypatch.setenv(name, value)
    client, keys = isolated.redis_client(), isolated.keys
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    w = T0 + timedelta(hours=1)

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        first = materialize([batch_views_redis], partition_key=hour_key(T0), resources=resources, instance=instance)
        assert first.success
        metadata = first.asset_materializations_for_node("batch_views_redis")[0].metadata
        assert metadata["watermark"].value == w.isoformat()
        assert metadata["watermark_epoch"].value == int(w.timestamp())
        assert current_version(client, keys) == (metadata["version"].value, int(w.timestamp()))
        assert metadata["rows_per_view"].data["user_totals"] == 4
        assert metadata["previous_version"].value == "none" and metadata["seconds"].value > 0

        older = materialize([batch_views_redis], partition_key=hour_key(T0 - timedelta(hours=1)),
                            resources=resources, instance=instance)
    assert older.success
    again = older.asset_materializations_for_node("batch_views_redis")[0].metadata
    assert again["watermark_epoch"].value == int(w.timestamp())
    assert again["previous_version"].value == metadata["version"].value != again["version"].value
    read = read_batch_user_totals(client, keys, "u1")
    assert read is not None and (read.version, read.watermark) == (again["version"].value, int(w.timestamp()))
    totals = {"watch_seconds": 30, "events": 10, "clicks": 1}
    assert read.values == {**totals, "days": {T0.date().isoformat(): totals}}  # every event on T0's date


def test_the_gate_reads_the_latest_evaluation_of_each_blocking_check(tmp_path):
    from dagster import DagsterInstance, asset, asset_check, materialize

    from orchestration.defs.publish.checks import blocking_check_failures

    verdicts = iter([True, False, True])

    @asset
    def probed() -> None:
        """A table some blocking check guards."""

    @asset_check(asset=probed, blocking=True)
    def probed_rows() -> AssetCheckResult:
        passed = next(verdicts)
        return AssetCheckResult(passed=passed, description=None if passed else "3 rows have no event_id")

    checks = [("probed", "probed_rows"), ("never_checked", "some_check")]
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        assert blocking_check_failures(instance, checks) == []
        assert materialize([probed, probed_rows], instance=instance).success
        assert blocking_check_failures(instance, checks) == []
        assert not materialize([probed, probed_rows], instance=instance, raise_on_error=False).success
        assert blocking_check_failures(instance, checks) == ["probed / probed_rows: 3 rows have no event_id"]
        assert materialize([probed, probed_rows], instance=instance).success
        assert blocking_check_failures(instance, checks) == []

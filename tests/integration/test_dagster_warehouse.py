"""The warehouse Dagster definitions load with their graph, partitions and schedules, and silver materializes.

Contract: the merged definitions validate; bronze -> silver_events -> fact_stream_events -> marts and
bronze -> dimensions -> marts are the drawn dependencies; the hourly assets share hourly partitions and the
daily ones daily partitions, each group with its schedule; every Spark step carries the ``reelytics/spark``
tag. Against real Kafka, Spark and Delta, materializing ``bronze`` and then ``silver_events`` for one hour
reports as many rows as the silver table holds for that hour, and the bronze sensor asks for that hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from batch_layer.silver.transform import LATE_GRACE
from tests.warehouse_support import last_closed_hour, simulate_into_kafka, use_settings
from warehouse_models.marts import MART_TABLES


def test_definitions_load_with_graph_partitions_and_schedules():
    from dagster import AssetKey, DailyPartitionsDefinition, Definitions, HourlyPartitionsDefinition

    from orchestration.definitions import defs

    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
               for k in graph.get_all_asset_keys()}
    assert parents["bronze"] == {"kafka_topics"}
    assert parents["silver_events"] == {"bronze"}
    assert parents["fact_stream_events"] == {"silver_events"}
    assert parents["dim_content"] == parents["dim_users"] == {"bronze"}
    marts = {k for k in parents if k.startswith("mart_")}
    assert len(marts) == len(MART_TABLES)
    assert all(parents[m] == {"fact_stream_events", "dim_content", "dim_users"} for m in marts)

    for key in ("bronze", "silver_events", "fact_stream_events"):
        assert isinstance(graph.get(AssetKey(key)).partitions_def, HourlyPartitionsDefinition), key
    for key in ("dim_content", "dim_users", *marts):
        assert isinstance(graph.get(AssetKey(key)).partitions_def, DailyPartitionsDefinition), key
    for key in ("bronze", "silver_events", "fact_stream_events", "dim_content", "mart_segments"):
        node = defs.get_assets_def(key)
        assert node.op.tags.get("reelytics/spark") == "true", key
        assert node.op.retry_policy is not None and node.op.retry_policy.max_retries == 2, key

    crons = {s.name: s.cron_schedule for s in defs.schedules}
    warehouse = ("warehouse_hourly_schedule", "warehouse_daily_schedule", "warehouse_maintenance_schedule")
    assert {name: crons[name] for name in warehouse} == {
        "warehouse_hourly_schedule": "7 * * * *", "warehouse_daily_schedule": "30 2 * * *",
        "warehouse_maintenance_schedule": "0 4 * * *"}
    assert parents["delta_maintenance"] == {"bronze", "silver_events", "fact_stream_events", "dim_content",
                                            "dim_users", *marts}
    assert defs.get_assets_def("delta_maintenance").op.tags.get("reelytics/spark") == "true"
    assert defs.get_job_def("warehouse_hourly").tags["reelytics/spark"] == "true"
    assert {s.name for s in defs.sensors} == {"bronze_playback_sensor"}


def test_silver_events_materializes_one_hour(kafka_service, isolated, monkeypatch, tmp_path):
    from dagster import DagsterInstance, build_sensor_context, materialize
    from deltalake import DeltaTable

    from orchestration.defs.warehouse.assets import bronze, silver_events
    from orchestration.defs.warehouse.partitions import hour_key
    from orchestration.defs.warehouse.sensors import bronze_playback_sensor
    from orchestration.resources import ReelyticsSettingsResource, SparkResource
    from warehouse_models.tables import SILVER_EVENTS

    use_settings(monkeypatch, isolated)
    # A few minutes inside the hour that last closed: a valid hourly partition (end_offset=0).
    produced_at = datetime.now(timezone.utc)
    hour = simulate_into_kafka(isolated, last_closed_hour()).hour

    key = hour_key(hour)
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        landed = materialize([bronze], partition_key=key, resources=resources, instance=instance)
        assert landed.success
        assert landed.asset_materializations_for_node("bronze")[0].metadata["rows_added"].value > 0

        with build_sensor_context(instance=instance, resources={"settings": resources["settings"]}) as context:
            sensed = bronze_playback_sensor(context)
        assert key in {r.partition_key for r in sensed.run_requests}
        assert sensed.cursor is not None and int(sensed.cursor) >= 1

        built = materialize([bronze, silver_events], selection=[silver_events], partition_key=key,
                            resources=resources, instance=instance)
    assert built.success
    metadata = built.asset_materializations_for_node("silver_events")[0].metadata
    silver = DeltaTable(SILVER_EVENTS.path(isolated.delta_root_uri)).to_pyarrow_table()
    assert metadata["rows"].value == silver.num_rows > 0
    # Produced after the hour closed: every row is late, unless it was still within the hour's grace period.
    late = produced_at >= hour + timedelta(hours=1) + LATE_GRACE
    assert metadata["late_rows"].value == silver.column("is_late").to_pylist().count(True) == (
        silver.num_rows if late else 0)
    assert metadata["hours_rebuilt"].data == [hour.isoformat()]
    assert "| event_id |" in metadata["preview"].md_str

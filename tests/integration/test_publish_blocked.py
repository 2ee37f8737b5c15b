"""A failed blocking quality check stops publication to Redis, on real Kafka, Spark, Delta, Redis and Dagster.

Contract: a copy of the shared warehouse (an hour built through Dagster: bronze, silver, the fact table with its
blocking check) is published by ``batch_views_redis`` as of the hour's end. After a fact row with a title the
content dimension does not know gets into the fact partition (through its silver hour), the fact check fails;
``batch_views_redis`` then refuses to publish, its failure naming the check, what it found and what to do, and the
Redis pointer still names the version published before.
"""

from __future__ import annotations

from datetime import timedelta


def test_a_corrupted_fact_partition_blocks_publication(warehouse, redis_service, spark, monkeypatch, tmp_path):
    from dagster import DagsterInstance, materialize
    from pyspark.sql import functions as F

    from orchestration.defs.publish.assets import batch_views_redis
    from orchestration.defs.warehouse.assets import fact_stream_events
    from orchestration.defs.warehouse.checks import fact_stream_events_quality
    from orchestration.resources import ReelyticsSettingsResource, SparkResource
    from tests.warehouse_support import use_settings
    from warehouse_models.batch_versions import current_version
    from warehouse_models.tables import FACT_STREAM_EVENTS, SILVER_EVENTS

    isolated = warehouse.copy(tmp_path)
    use_settings(monkeypatch, isolated)
    hour, key = warehouse.world.hour, warehouse.hour_key
    watermark = int((hour + timedelta(hours=1)).timestamp())
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    client, keys = isolated.redis_client(), isolated.keys

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        built = materialize([batch_views_redis], partition_key=key, resources=resources, instance=instance)
        assert built.success
        published = built.asset_materializations_for_node("batch_views_redis")[0].metadata["version"].value
        assert current_version(client, keys) == (published, watermark)

        # A row with a title the content dimension does not know, written into the hour's silver partition: the
        # fact partition rebuilt from it holds the row (a check cannot run on its own partitioned asset in
        # `materialize`, so the corruption goes in where the rebuild picks it up).
        silver_path = SILVER_EVENTS.path(isolated.delta_root_uri)
        spark.read.format("delta").load(silver_path).where(F.col("event_hour") == F.lit(hour)).limit(1) \
            .withColumns({"event_id": F.lit("corrupt-title-1"), "content_id": F.lit("ghost-title")}) \
            .write.format("delta").mode("append").save(silver_path)
        checked = materialize([fact_stream_events, fact_stream_events_quality], partition_key=key,
                              resources=resources, instance=instance, raise_on_error=False)
        (check,) = checked.get_asset_check_evaluations()
        assert not check.passed
        fact = spark.read.format("delta").load(FACT_STREAM_EVENTS.path(isolated.delta_root_uri))
        assert fact.where(F.col("content_id") == "ghost-title").count() == 1

        refused = materialize([batch_views_redis], partition_key=key, resources=resources, instance=instance,
                              raise_on_error=False)
    assert not refused.success
    assert refused.asset_materializations_for_node("batch_views_redis") == []
    (failure,) = refused.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert "fact_stream_events / fact_stream_events_quality" in message
    assert check.description in message and "run batch_views_redis again" in message
    assert current_version(client, keys) == (published, watermark)

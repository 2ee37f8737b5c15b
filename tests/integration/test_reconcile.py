"""Speed vs batch reconciliation on real Kafka, Spark, Delta and Redis, and its Dagster drift check.

Contract: simulated minutes of one closed hour go through Kafka into the speed views (engagement, CTR, QoE, run
available-now) and through bronze, silver and the fact table; reconciling that hour finds every additive view
metric equal in both layers (drift 0, with non-zero totals) and writes one row per metric to the
``reconciliation`` table. With one engagement bucket removed from Redis, the Dagster ``reconciliation`` asset
replaces the hour's rows and its ``reconciliation_drift`` check fails naming the view and the hour, while the
views that still agree stay at drift 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def test_speed_and_batch_agree_and_a_missing_bucket_fails_the_check(kafka_service, redis_service, isolated, spark,
                                                                     monkeypatch, tmp_path):
    from dagster import DagsterInstance, materialize
    from deltalake import DeltaTable

    from batch_layer.bronze.job import run_bronze_available_now
    from batch_layer.gold.job import build_fact, dates_of_hours
    from batch_layer.reconcile import speed
    from batch_layer.reconcile.job import reconcile
    from infra.kafka import ensure_topics
    from orchestration.defs.publish.assets import reconciliation
    from orchestration.defs.warehouse.partitions import hour_key
    from orchestration.resources import ReelyticsSettingsResource, SparkResource
    from simulator import SimulationConfig, simulate
    from simulator.sinks import write_kafka
    from speed_layer.job import run_speed_available_now
    from warehouse_models.metrics.ctr import COUNTS
    from warehouse_models.metrics.engagement import METRICS
    from warehouse_models.metrics.qoe import QOE_FIELDS
    from warehouse_models.settings import settings_environment
    from warehouse_models.tables import RECONCILIATION

    settings = isolated
    ensure_topics(settings)
    # The test's clock, passed to every step that judges which hours are closed: two hours back is closed and
    # settled, and its buckets are well inside their TTL, however long the test takes.
    clock = datetime.now(timezone.utc)
    hour = clock.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    config = SimulationConfig(start=hour + timedelta(minutes=10), duration=timedelta(minutes=6), users=60,
                              titles=30, channels=3, sessions_per_user_hour=3.0, browses_per_user_hour=3.0)
    write_kafka(list(simulate(config)), settings)

    run_speed_available_now(spark, settings, names=["engagement", "ctr", "qoe", "view_end"], timeout_s=900)
    run_bronze_available_now(settings, spark, timeout_s=300)
    from batch_layer.silver.job import build_silver

    build_silver(spark, settings, hours=[hour])
    build_fact(spark, settings, dates=dates_of_hours([hour]))

    rows = reconcile(spark, settings, now=clock)
    expected_metrics = ({("engagement", m) for m in METRICS} | {("ctr", m) for m in COUNTS}
                        | {("qoe", m) for m in QOE_FIELDS})
    assert {r["hour"] for r in rows} == {hour}
    assert {(r["view"], r["metric"]) for r in rows} == expected_metrics and len(rows) == len(expected_metrics)
    drifting = [r for r in rows if r["absolute_drift"] != 0]
    assert not drifting, drifting
    totals = {(r["view"], r["metric"]): r["batch_total"] for r in rows}
    for metric in (("engagement", "watch_seconds"), ("engagement", "clicks"), ("ctr", "impressions"),
                   ("qoe", "plays"), ("qoe", "playing_seconds")):
        assert totals[metric] > 0, metric
    assert all(r["key_count"] > 0 for r in rows)
    table = DeltaTable(RECONCILIATION.path(settings.delta_root_uri)).to_pyarrow_table()
    assert table.num_rows == len(rows)

    # The hour's first minute of engagement vanishes from the speed layer, every user's: a sixth of the simulated
    # traffic, above the default drift threshold whatever the time of day the simulator starts at (one user's
    # minute is below it at busy hours).
    client, keys = settings.redis_client(), settings.keys
    buckets = speed.bucket_ids(client, keys.user_engagement_bucket, 1)
    bucket = min(b for b in buckets if hour.timestamp() <= b < hour.timestamp() + 3600)
    users = sorted(user for (user,) in buckets[bucket])
    assert client.delete(*[keys.user_engagement_bucket(user, bucket) for user in users]) == len(users)

    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        result = materialize([reconciliation], partition_key=hour_key(hour + timedelta(hours=1)),
                             resources=resources, instance=instance,
                             run_config={"ops": {"reconciliation": {"config": {"as_of": clock.isoformat()}}}})
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "reconciliation_drift" and not evaluation.passed
    assert f"engagement @ {hour.isoformat()}" in evaluation.description
    assert "ctr" not in evaluation.description and "qoe" not in evaluation.description
    metadata = result.asset_materializations_for_node("reconciliation")[0].metadata
    assert metadata["hours_reconciled"].data == [hour.isoformat()]

    after = DeltaTable(RECONCILIATION.path(settings.delta_root_uri)).to_pyarrow_table().to_pylist()
    assert len(after) == len(rows)  # the hour's rows were replaced, not appended to
    by_metric = {(r["view"], r["metric"]): r for r in after}
    assert by_metric[("engagement", "events")]["absolute_drift"] > 0
    assert by_metric[("engagement", "events")]["speed_total"] < by_metric[("engagement", "events")]["batch_total"]
    assert all(r["absolute_drift"] == 0 for (view, _), r in by_metric.items() if view != "engagement")

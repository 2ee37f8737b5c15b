"""`reelytics backfill` against real Kafka, Spark, Delta and a Dagster instance in a temporary DAGSTER_HOME.

Contract: after a few simulated minutes of one hour of yesterday (UTC) went to Kafka (the shared warehouse),
backfilling that hour runs the hourly partition and then the daily one in the command's process, prints a progress
line per partition and a summary, records the runs (tagged with the backfill) and the materializations in the
instance, and `reelytics sql` then answers watch seconds per user (from the fact table and from the engagement
mart) exactly as the simulator's ground truth says. `--submit` records an asset backfill of the hourly and daily
partitions for the daemon instead, and prints its id and URL; a range reaching into the hour in progress is refused
with the hour to end at.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from reelytics.cli import app
from tests.warehouse_support import Warehouse, positive_sums, use_settings
from warehouse_models.settings import Settings

WATCH_PER_USER = ("SELECT user_id, sum(watch_seconds) AS watch_seconds FROM fact_stream_events "
                  "GROUP BY user_id ORDER BY user_id")
MART_WATCH_PER_USER = ("SELECT user_id, sum(watch_seconds) AS watch_seconds FROM mart_user_engagement_daily "
                       "GROUP BY user_id ORDER BY user_id")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def dagster_home_settings(isolated: Settings, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The isolated settings with a DAGSTER_HOME of the test's own, in the environment the command reads."""
    settings = isolated.model_copy(update={"dagster_home": tmp_path / "dagster-home"})
    use_settings(monkeypatch, settings)
    return settings


def _sql_sums(query: str) -> dict[str, float]:
    result = invoke("sql", query, "--format", "json")
    assert result.exit_code == 0, result.output
    return positive_sums([(row["user_id"], row["watch_seconds"]) for row in json.loads(result.stdout)])


def test_backfill_one_hour_then_query_it(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared warehouse was built by ``reelytics backfill`` of its hour (see ``tests/integration/conftest.py``)."""
    from dagster import AssetKey, DagsterRunStatus, RunsFilter

    from orchestration.backfill import BACKFILL_TAG, instance_for

    out = warehouse.backfill_output
    hour_key, day_key = warehouse.hour_key, warehouse.day_key
    assert f"[1/2] warehouse_hourly {hour_key} done" in out
    assert f"[2/2] warehouse_daily {day_key} done" in out
    assert "2/2 partitions" in out and "reelytics sql" in out

    with instance_for(warehouse.settings.dagster_home_dir) as instance:
        runs = instance.get_runs(RunsFilter(tags={BACKFILL_TAG: instance.get_runs()[0].tags[BACKFILL_TAG]}))
        assert sorted((r.job_name, r.tags["dagster/partition"], r.status) for r in runs) == [
            ("warehouse_daily", day_key, DagsterRunStatus.SUCCESS),
            ("warehouse_hourly", hour_key, DagsterRunStatus.SUCCESS)]
        fact = instance.get_latest_materialization_event(AssetKey("fact_stream_events"))
        assert fact is not None and fact.dagster_event.partition == hour_key
        # Each viewer event once: the heartbeat produced twice counts once, the replayed view_end once.
        assert fact.asset_materialization.metadata["rows"].value == warehouse.fact_rows

    use_settings(monkeypatch, warehouse.settings)
    expected = {user: float(seconds) for user, seconds in warehouse.world.truth["watch_seconds_per_user"].items()}
    assert expected and _sql_sums(WATCH_PER_USER) == expected
    assert _sql_sums(MART_WATCH_PER_USER) == expected


def test_submit_records_a_backfill_for_the_daemon(dagster_home_settings: Settings) -> None:
    from dagster import AssetKey
    from dagster._core.execution.backfill import BulkActionStatus

    from orchestration.backfill import instance_for

    result = invoke("backfill", "--start", "2026-11-01", "--end", "2026-11-02", "--submit")
    assert result.exit_code == 0, result.output
    with instance_for(dagster_home_settings.dagster_home_dir) as instance:
        (backfill,) = instance.get_backfills()
        assert backfill.status == BulkActionStatus.REQUESTED
        assert backfill.tags["reelytics/spark"] == "true"
        subset = backfill.asset_backfill_data.target_subset
        assert len(subset.get_partitions_subset(AssetKey("silver_events")).get_partition_keys()) == 48
        assert subset.get_partitions_subset(AssetKey("mart_segments")).get_partition_keys() == [
            "2026-11-01", "2026-11-02"]
    assert f"submitted backfill {backfill.backfill_id}" in result.stdout
    assert f"/runs/b/{backfill.backfill_id}" in result.stdout


def test_a_range_into_the_hour_in_progress_is_refused(dagster_home_settings: Settings) -> None:
    now = datetime.now(timezone.utc)
    result = invoke("backfill", "--start", (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H"),
                    "--end", now.strftime("%Y-%m-%dT%H"))
    assert result.exit_code == 2
    assert "has not closed yet" in result.stderr and "end at" in result.stderr

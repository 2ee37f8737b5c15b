"""The simulated warehouse the integration tests share: built once per test session, read by many tests.

A few simulated minutes of one hour of yesterday (UTC) go to Kafka, with what real clients add (a heartbeat
produced twice, a derived view_end replayed), and ``reelytics backfill`` builds that hour and its date through
Dagster's hourly and daily jobs (bronze, silver, the fact table, the dimensions, the marts and every quality
check), the way a data engineer would. Tests that only read use :class:`~tests.warehouse_support.Warehouse` as it
is; a test that changes tables, or produces events, works on its ``copy`` under its own ``tmp_path`` (the Delta
tables copied, Kafka topics, checkpoints, Redis prefix and Dagster home of its own).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from tests.warehouse_support import (
    BUILT_TABLES,
    Warehouse,
    produce,
    simulate_into_kafka,
    table_versions,
    use_settings,
    view_end_of,
    yesterday_hour,
)
from warehouse_models.settings import Settings


@pytest.fixture(scope="session")
def warehouse(kafka_service: Settings, spark, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    from typer.testing import CliRunner

    from reelytics.cli import app

    root = tmp_path_factory.mktemp("warehouse")
    tag = uuid.uuid4().hex[:10]
    settings = kafka_service.model_copy(update={
        "kafka_topic_prefix": f"wh-{tag}", "redis_key_prefix": f"wh-{tag}", "kafka_partitions": 3,
        "delta_root": str(root / "delta"), "checkpoint_root": str(root / "checkpoints"),
        "dagster_home": root / "dagster-home",
        # The data is a day old when checked: freshness is judged against a wider window than the default.
        "quality_freshness_max_age_seconds": 2 * 86_400,
    })
    with pytest.MonkeyPatch.context() as patch:
        use_settings(patch, settings)
        world = simulate_into_kafka(settings, yesterday_hour(14))
        duplicate = next(e for e in world.events if e["event_type"] == "heartbeat")
        produce(settings, [duplicate], "playback")
        view_end = view_end_of(world.events)
        produce(settings, [view_end, view_end], "derived")
        before_bronze = datetime.now(timezone.utc) - timedelta(seconds=1)
        hour = world.hour.strftime("%Y-%m-%dT%H")
        result = CliRunner().invoke(app, ["backfill", "--start", hour, "--end", hour], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    yield Warehouse(settings, world, duplicate, view_end, before_bronze, result.stdout,
                    table_versions(spark, settings, BUILT_TABLES))

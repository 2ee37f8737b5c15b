"""Helpers the warehouse integration tests share: a simulated hour in Kafka, settings in the environment, whole-table
comparisons of Delta tables across rebuilds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from simulator import SimulationConfig, ground_truth, simulate
from simulator.sinks import write_kafka
from warehouse_models.settings import Settings, load_settings, settings_environment
from warehouse_models.tables import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class SimulatedHour:
    """A few simulated minutes inside one UTC hour, written to the settings' Kafka topics."""

    hour: datetime
    config: SimulationConfig
    events: list[dict[str, Any]]
    truth: dict[str, Any]


def last_closed_hour() -> datetime:
    """The UTC hour that closed last: the newest valid hourly partition (``end_offset=0``)."""
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def yesterday_hour(hour: int = 14) -> datetime:
    """An hour of yesterday (UTC): its hourly and its daily partition are both closed."""
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1) + timedelta(hours=hour)


def simulate_into_kafka(settings: Settings, hour: datetime, *, users: int = 60,
                        minutes: int = 8) -> SimulatedHour:
    """Create the topics and write ``minutes`` of a simulated world of ``users``, starting at ``hour`` + 10 min."""
    from infra.kafka import ensure_topics

    ensure_topics(settings)
    config = SimulationConfig(start=hour + timedelta(minutes=10), duration=timedelta(minutes=minutes), users=users)
    events = list(simulate(config))
    write_kafka(events, settings)
    return SimulatedHour(hour, config, events, ground_truth(events, config=config))


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Put the settings in the ``REELYTICS_*`` environment the Dagster resources and the CLI read."""
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    assert load_settings().delta_root_uri == settings.delta_root_uri


def table_versions(spark: SparkSession, settings: Settings, specs: tuple[TableSpec, ...]) -> dict[str, int]:
    """The newest version of each table."""
    from delta.tables import DeltaTable

    return {spec.name: int(DeltaTable.forPath(spark, spec.path(settings.delta_root_uri)).history(1)
                           .collect()[0]["version"])
            for spec in specs}


def assert_same_as_version(spark: SparkSession, settings: Settings, spec: TableSpec, version: int) -> None:
    """The table now holds exactly the rows it held at ``version`` (none lost, none added twice), and it was
    rewritten since by an overwrite rather than left alone or appended to."""
    from delta.tables import DeltaTable

    path = spec.path(settings.delta_root_uri)
    before = spark.read.format("delta").option("versionAsOf", version).load(path)
    now = spark.read.format("delta").load(path)
    assert now.count() == before.count() > 0, spec.name
    assert now.exceptAll(before).count() == 0 and before.exceptAll(now).count() == 0, f"{spec.name} changed"
    last = DeltaTable.forPath(spark, path).history(1).collect()[0]
    assert last["version"] > version, f"{spec.name} was not rewritten"
    assert (last["operation"], last["operationParameters"]["mode"]) == ("WRITE", "Overwrite"), spec.name


def positive_sums(rows: list[tuple[str, float]]) -> dict[str, float]:
    """``{key: value}`` of (key, sum) rows, the zero sums left out (the ground truth lists only viewers)."""
    return {key: float(value) for key, value in rows if value}

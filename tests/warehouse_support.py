"""Helpers the warehouse integration tests share: a simulated hour in Kafka, settings in the environment, whole-table
comparisons of Delta tables across rebuilds."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator import SimulationConfig, ground_truth, simulate
from simulator.sinks import write_kafka
from warehouse_models.events import CATALOG_TYPES
from warehouse_models.marts import MART_TABLES
from warehouse_models.settings import Settings, load_settings, settings_environment
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, SILVER_EVENTS, TableSpec

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


def produce(settings: Settings, events: list[dict[str, Any]], kind: str) -> None:
    """Send events straight to the settings' topic of ``kind`` (a producer of its own, not the simulator's sink)."""
    from kafka import KafkaProducer

    from warehouse_models.events import encode, kafka_key

    producer = KafkaProducer(**settings.kafka_producer_config())
    try:
        topic = settings.topics.for_kind(kind).name
        for event in events:
            producer.send(topic, value=encode(event), key=kafka_key(event))
        producer.flush()
    finally:
        producer.close()


def view_end_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A view_end for the first session with a play_end, as the speed layer would derive it (30 s watched)."""
    end = next(e for e in events if e["event_type"] == "play_end")
    return {
        "event_id": f"ve-{end['session_id']}", "schema_version": 1, "event_type": "view_end",
        "event_timestamp": end["event_timestamp"], "account_id": end["account_id"], "user_id": end["user_id"],
        "session_id": end["session_id"], "content_id": end["content_id"], "watch_seconds": 30.0,
        "end_reason": "explicit_end",
    }


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


BUILT_TABLES: tuple[TableSpec, ...] = (SILVER_EVENTS, FACT_STREAM_EVENTS, DIM_CONTENT, DIM_USERS, *MART_TABLES)
"""The tables the hourly and daily jobs write (bronze apart)."""

_CATALOG = {t.value for t in CATALOG_TYPES}


@dataclass(frozen=True)
class Warehouse:
    """The shared warehouse: its settings, the simulated world in it, and how it was built."""

    settings: Settings
    world: SimulatedHour
    duplicate: dict[str, Any]
    """A heartbeat of the world produced a second time (a producer's retry)."""
    view_end: dict[str, Any]
    """A view_end the speed layer would derive, produced twice (a replayed micro-batch)."""
    before_bronze: datetime
    """A time just before bronze ingested the world (what ``affected_hours`` is asked since)."""
    backfill_output: str
    """What ``reelytics backfill`` printed while building it."""
    versions: dict[str, int]
    """Each built table's version right after the build."""

    @property
    def hour_key(self) -> str:
        return self.world.hour.strftime("%Y-%m-%d-%H:00")

    @property
    def day_key(self) -> str:
        return self.world.hour.date().isoformat()

    @property
    def viewer_events(self) -> list[dict[str, Any]]:
        """The simulated viewer events (catalog upserts left out), each once."""
        return [e for e in self.world.events if e["event_type"] not in _CATALOG]

    @property
    def fact_rows(self) -> int:
        """Rows the fact table must hold: each viewer event once, and the replayed view_end once."""
        return len(self.viewer_events) + 1

    def copy(self, dest: Path) -> Settings:
        """Settings for a copy of the warehouse's Delta tables under ``dest``, with Kafka topics, streaming
        checkpoints, a Redis prefix and a Dagster home of its own: a test that changes tables or produces events
        changes only its copy (bronze on the copy reads its own, empty topics until the test produces to them)."""
        shutil.copytree(self.settings.delta_root_uri, dest / "delta")
        tag = uuid.uuid4().hex[:10]
        return self.settings.model_copy(update={
            "delta_root": str(dest / "delta"), "checkpoint_root": str(dest / "checkpoints"),
            "dagster_home": dest / "dagster-home", "kafka_topic_prefix": f"test-{tag}",
            "redis_key_prefix": f"test-{tag}"})

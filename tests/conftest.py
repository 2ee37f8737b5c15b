"""Shared fixtures: real services started once per session by the project's own infra code.

Services already answering at the configured addresses (e.g. after `reelytics up`) are reused; the ones the
session starts live in a temporary data dir and are stopped at the end. Each test gets its own topic prefix,
Redis key prefix and Delta root, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from warehouse_models.settings import Settings


@pytest.fixture(scope="session")
def service_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the session's services: configured endpoints, a temporary data dir."""
    return Settings(data_dir=tmp_path_factory.mktemp("reelytics-data"))


@pytest.fixture(scope="session")
def kafka_service(service_settings: Settings) -> Iterator[Settings]:
    from infra import kafka

    started = not kafka.healthy(service_settings)
    kafka.start(service_settings)
    yield service_settings
    if started:
        kafka.stop(service_settings)


@pytest.fixture(scope="session")
def redis_service(service_settings: Settings) -> Iterator[Settings]:
    from infra import redis

    started = not redis.healthy(service_settings)
    redis.start(service_settings)
    yield service_settings
    if started:
        redis.stop(service_settings)


@pytest.fixture
def isolated(service_settings: Settings, tmp_path: Path) -> Settings:
    """Per-test settings: the session's endpoints with a unique topic and Redis prefix and a fresh Delta root."""
    tag = uuid.uuid4().hex[:10]
    return service_settings.model_copy(update={
        "kafka_topic_prefix": f"test-{tag}",
        "redis_key_prefix": f"test-{tag}",
        "delta_root": str(tmp_path / "delta"),
        "checkpoint_root": str(tmp_path / "checkpoints"),
        "kafka_partitions": 3,
    })


@pytest.fixture(scope="session")
def spark(service_settings: Settings):
    """One local SparkSession (Kafka + Delta jars) for the whole session."""
    from infra.spark import build_spark_session

    session = build_spark_session(service_settings, app_name="reelytics-tests", ui=False)
    yield session
    session.stop()

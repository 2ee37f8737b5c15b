"""Shared fixtures: real services started once per session by the project's own infra code.

Services already answering at the configured addresses (e.g. after `reelytics up`) are reused; the ones the
session starts live in a temporary data dir and are stopped at the end. Each test gets its own topic prefix,
Redis key prefix and Delta root, so tests never see each other's data.

The folder a test lives in is its kind, and its marker and time limit follow from it here, in one place:

- ``tests/unit``: pure functions, no JVM and no service (a unit test asking for one is refused at collection);
- ``tests/spark``: Spark transforms on hand-made frames in a local SparkSession, no service (marker ``spark``);
- ``tests/integration``: real Kafka, Redis, Spark + Delta and Dagster (marker ``integration``).

The fast loop is ``pytest -m "not integration and not spark"``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from warehouse_models.settings import Settings

TESTS = Path(__file__).parent

KINDS: dict[str, tuple[str | None, float]] = {
    "unit": (None, 10),
    "spark": ("spark", 300),
    "integration": ("integration", 900),
}
"""Folder -> (marker, default per-test timeout in seconds); a test may ask for a longer one itself."""

SERVICE_FIXTURES = frozenset({"spark", "kafka_service", "redis_service", "warehouse"})
"""Fixtures that start a JVM or talk to a service: not for unit tests."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's kind and time limit; refuse unit tests that need a JVM or a service."""
    misplaced = []
    for item in items:
        try:
            kind = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if kind not in KINDS:
            continue
        marker, timeout = KINDS[kind]
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(timeout))
        if kind == "unit" and SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            misplaced.append(f"{item.nodeid} uses {sorted(SERVICE_FIXTURES & set(item.fixturenames))}")
    if misplaced:
        raise pytest.UsageError("tests/unit runs without a JVM or services; move these to tests/spark or "
                                "tests/integration:\n  " + "\n  ".join(misplaced))


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

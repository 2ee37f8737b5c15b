"""The Spark settings every job starts with: the JVM options reach the driver and the executors."""

from __future__ import annotations

from pathlib import Path

import pytest

import infra.spark
from warehouse_models.settings import Settings


@pytest.fixture(autouse=True)
def _no_jars(monkeypatch):
    monkeypatch.setattr(infra.spark, "connector_jars", lambda settings: [])
    monkeypatch.setattr(infra.spark, "own_jars", lambda settings: [])


def test_parallel_gc_by_default_on_driver_and_executors(tmp_path: Path):
    conf = infra.spark.spark_conf(Settings(data_dir=tmp_path), app_name="t")
    assert conf["spark.driver.extraJavaOptions"].split() == [f"-Dderby.system.home={tmp_path / 'spark-derby'}",
                                                             "-XX:+UseParallelGC"]
    assert conf["spark.executor.extraJavaOptions"] == "-XX:+UseParallelGC"


def test_empty_jvm_options_leave_the_jvm_defaults(tmp_path: Path):
    conf = infra.spark.spark_conf(Settings(data_dir=tmp_path, spark_jvm_options=""), app_name="t")
    assert conf["spark.driver.extraJavaOptions"] == f"-Dderby.system.home={tmp_path / 'spark-derby'}"
    assert "GC" not in conf["spark.executor.extraJavaOptions"]

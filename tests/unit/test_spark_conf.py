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
                                                             "-Xss16m", "-XX:+UseParallelGC"]
    assert conf["spark.executor.extraJavaOptions"] == "-XX:+UseParallelGC"


def test_empty_jvm_options_leave_the_jvm_defaults(tmp_path: Path):
    conf = infra.spark.spark_conf(Settings(data_dir=tmp_path, spark_jvm_options=""), app_name="t")
    # Only the driver's own: Derby's home and the stack a stopping streaming query needs.
    assert conf["spark.driver.extraJavaOptions"] == f"-Dderby.system.home={tmp_path / 'spark-derby'} -Xss16m"
    assert "GC" not in conf["spark.executor.extraJavaOptions"]


def test_a_thread_stack_given_in_the_jvm_options_wins(tmp_path: Path):
    conf = infra.spark.spark_conf(Settings(data_dir=tmp_path, spark_jvm_options="-Xss64m"), app_name="t")
    stacks = [option for option in conf["spark.driver.extraJavaOptions"].split() if option.startswith("-Xss")]
    assert stacks[-1] == "-Xss64m"  # the JVM takes the last one


def test_a_local_master_writes_files_without_a_process_each(tmp_path: Path, monkeypatch):
    jar = tmp_path / "reelytics-jvm.jar"
    monkeypatch.setattr(infra.spark, "own_jars", lambda settings: [jar])
    conf = infra.spark.spark_conf(Settings(data_dir=tmp_path, spark_master="local[2]"), app_name="t")
    assert conf["spark.hadoop.fs.file.impl"] == infra.spark.LOCAL_FILE_SYSTEM
    # The class is needed before Spark adds its jars, when spark-submit first reads a local path.
    assert conf["spark.driver.extraClassPath"] == str(jar)
    assert conf["spark.sql.streaming.checkpointFileManagerClass"].endswith("FileSystemBasedCheckpointFileManager")


def test_a_cluster_or_a_missing_jar_keeps_hadoops_file_system(tmp_path: Path, monkeypatch):
    conf = infra.spark.spark_conf(Settings(data_dir=tmp_path, spark_master="local[2]"), app_name="t")
    assert "spark.hadoop.fs.file.impl" not in conf  # no jar (the fixture)
    monkeypatch.setattr(infra.spark, "own_jars", lambda settings: [tmp_path / "reelytics-jvm.jar"])
    conf = infra.spark.spark_conf(Settings(data_dir=tmp_path, spark_master="spark://head:7077"), app_name="t")
    assert not {"spark.hadoop.fs.file.impl", "spark.driver.extraClassPath",
                "spark.sql.streaming.checkpointFileManagerClass"} & conf.keys()

"""The SparkSession: local mode by default, with the Kafka connector and Delta Lake jars from the cache.

The jars are fetched once from Maven Central by `infra/install.sh` into ``<cache>/jars/spark-connectors``;
jars the pyspark wheel already ships (Spark's own, Hadoop, Jackson, ...) are left out so one version of each
class is on the classpath. Reelytics' own classes (``infra.jvm``) are added with them. ``spark.master`` comes
from the settings, so the same code runs on a cluster.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from infra.jvm import build_jar
from infra.process import ServiceError
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

_JAR_RE = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[^-]*(?:-.*)?)\.jar$")


def _artifact(jar: Path) -> str:
    match = _JAR_RE.match(jar.name)
    return match.group("artifact") if match else jar.stem


def connector_jars(settings: Settings) -> list[Path]:
    """The connector jars to add to Spark: those of the cache the pyspark wheel does not already ship."""
    import pyspark

    cache = settings.jars_dir / "spark-connectors"
    if not (cache / ".complete").exists():
        raise ServiceError(f"Spark's Kafka and Delta jars are not in {cache}. Run `bash infra/install.sh` first.")
    shipped = {_artifact(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return sorted(j for j in cache.glob("*.jar") if _artifact(j) not in shipped)


def own_jars(settings: Settings) -> list[Path]:
    """Reelytics' own jar (:func:`infra.jvm.build_jar`), or none with a warning when it cannot be built (no javac):
    the speed layer needs it (its queries refuse to start without the envelope check and view_end's state in it);
    without it, local file writes go through Hadoop's own file system."""
    try:
        return [build_jar(settings)]
    except ServiceError as exc:
        logger.warning("Spark starts without Reelytics' own classes (the speed queries will refuse to start: their "
                       "envelope check and view_end's state are in them): %s", exc)
        return []


LOCAL_FILE_SYSTEM = "reelytics.speed.LocalFileSystem"
"""Hadoop's local file system without a ``chmod`` or ``readlink`` process per file (``speed_layer/jvm``)."""


def _local_file_system(settings: Settings, own: list[Path]) -> dict[str, str]:
    """On a local master, ``file:`` paths through :data:`LOCAL_FILE_SYSTEM`, and checkpoints through Spark's
    FileSystem-based manager (which uses it; the FileContext-based default builds Hadoop's own local file system).

    Without Hadoop's native library (the pyspark wheel has none) Hadoop forks ``chmod`` for every file it creates
    and ``readlink`` for every link check: a streaming query's offset, commit and state changelog files (and their
    checksums) cost about 60 processes a second on a 1 s trigger, in each micro-batch's path. A cluster keeps its
    own configuration (its nodes have the native library, and its checkpoints are not ``file:`` paths).
    """
    if not own or not settings.spark_master.startswith("local"):
        return {}
    return {
        "spark.driver.extraClassPath": os.pathsep.join(str(jar) for jar in own),
        "spark.hadoop.fs.file.impl": LOCAL_FILE_SYSTEM,
        "spark.sql.streaming.checkpointFileManagerClass":
            "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager",
    }


def spark_conf(settings: Settings, *, app_name: str, ui: bool = True) -> dict[str, str]:
    """Every Spark setting Reelytics uses, as one dict (also shown by `reelytics status`)."""
    own = own_jars(settings)
    return {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(str(j) for j in [*connector_jars(settings), *own]),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.databricks.delta.snapshotPartitions": str(settings.spark_delta_snapshot_partitions),
        "spark.databricks.delta.optimizeWrite.binSize": str(settings.spark_delta_write_bin_mb),
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(settings.spark_file_listing_parallelism),
        # Fair scheduling: each streaming query runs in a pool of its own (speed_layer.job), so a query with a
        # heavy micro-batch does not hold every core while the light ones wait in a FIFO queue behind it.
        "spark.scheduler.mode": "FAIR",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.ui.enabled": str(ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stateStore.providerClass":
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        # Each micro-batch uploads the state changes it made, not a snapshot of the whole store.
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.warehouse.dir": str(settings.data_dir / "spark-warehouse"),
        # -Xss: threads with 16 MB stacks. Stopping a streaming query while its foreachBatch runs a Spark job makes
        # Spark match the Python error's text (a whole Java stack trace) with a regex that recurses once per
        # character (StreamExecution.isInterruptionException); with the default stack the stream thread dies of a
        # StackOverflowError and prints a thousand-frame stack (the query still stops). Options given in
        # spark_jvm_options come after, so an -Xss there wins.
        "spark.driver.extraJavaOptions":
            f"-Dderby.system.home={settings.data_dir / 'spark-derby'} -Xss16m {settings.spark_jvm_options}".strip(),
        "spark.executor.extraJavaOptions": settings.spark_jvm_options,
        **_local_file_system(settings, own),
    }


def build_spark_session(settings: Settings, *, app_name: str = "reelytics", ui: bool = True) -> SparkSession:
    """Build (or return the running) SparkSession with Delta's SQL extension and catalog on."""
    import os
    import shutil
    import sys

    from pyspark.sql import SparkSession

    # Python workers (UDFs, applyInPandas) must run this interpreter, which has the packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    if shutil.which("java") is None:
        raise ServiceError("Spark needs Java 17+: install a JDK (apt-get install openjdk-17-jdk-headless).")
    builder = SparkSession.builder
    for key, value in spark_conf(settings, app_name=app_name, ui=ui).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    logger.info("Spark %s session on %s", session.version, settings.spark_master)
    return session


def status(settings: Settings) -> tuple[bool, str]:
    """Spark runs inside each job (local mode) or on the cluster: report whether jobs can start."""
    try:
        jars = connector_jars(settings)
    except ServiceError as exc:
        return False, str(exc)
    import pyspark

    return True, f"pyspark {pyspark.__version__}, {len(jars)} connector jars cached, master {settings.spark_master}"

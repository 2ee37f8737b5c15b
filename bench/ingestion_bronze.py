"""Bronze ingestion rate: a simulated hour in fresh topics, one available-now bronze run over it, timed.

The figure is end to end for one run as an hourly Dagster asset would make it: query start-up, reading
Kafka, validating every record with the shared validator, and the Delta commits, divided into the records
the run added. Topics, tables and checkpoints are the run's own (a unique topic prefix and a temporary
directory) and are removed afterwards.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from simulator import SimulationConfig, simulate
from simulator.sinks import write_kafka
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)


def _delete_topics(settings: Settings) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_admin_config())
    try:
        admin.delete_topics(settings.topics.names())
    except Exception as exc:  # leftover topics only cost disk; the figures are already measured
        logger.warning("could not delete the benchmark topics: %s", exc)
    finally:
        admin.close()


def measure_bronze(settings: Settings, *, config: SimulationConfig | None = None) -> dict[str, Any]:
    """Time an available-now bronze run over a simulated hour; return the rate and the counts.

    Args:
        settings: the endpoints (Kafka, Spark master); topic prefix, Delta root and checkpoints are replaced.
        config: the simulated world (default: the default world over the hour that ended a minute ago).

    Returns:
        ``bronze_records_per_s`` (records added over the run's wall-clock seconds), ``bronze_seconds``,
        ``produce_seconds``, ``records`` and ``records_per_table``.
    """
    from batch_layer.bronze.job import run_bronze_available_now
    from infra.kafka import ensure_topics
    from infra.spark import build_spark_session

    if config is None:
        end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
        config = SimulationConfig(start=end - timedelta(hours=1))
    workdir = Path(tempfile.mkdtemp(prefix="bench-bronze-"))
    run = settings.model_copy(update={
        "kafka_topic_prefix": f"bench-bronze-{uuid.uuid4().hex[:8]}",
        "delta_root": str(workdir / "delta"),
        "checkpoint_root": str(workdir / "checkpoints"),
    })
    try:
        ensure_topics(run)
        began = time.monotonic()
        produced = write_kafka(simulate(config), run)
        produce_s = time.monotonic() - began
        logger.info("produced %d events in %.1f s", sum(produced.values()), produce_s)

        spark = build_spark_session(run, app_name="reelytics-bench-bronze", ui=False)
        began = time.monotonic()
        added = run_bronze_available_now(run, spark)
        bronze_s = time.monotonic() - began
    finally:
        _delete_topics(run)
        shutil.rmtree(workdir, ignore_errors=True)
    records = sum(added.values())
    if records != sum(produced.values()):
        raise RuntimeError(f"bronze added {records} records but {sum(produced.values())} were produced")
    return {
        "bronze_records_per_s": records / bronze_s,
        "bronze_seconds": bronze_s,
        "produce_seconds": produce_s,
        "records": records,
        "records_per_table": added,
    }

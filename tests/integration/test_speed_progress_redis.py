"""The speed layer's progress through the JVM listener (``reelytics.speed.ProgressBuffer``) into the real Redis.

Contract: every micro-batch of a ``speed-`` query reaches ``speed_progress(<name>)`` with Spark's own figures, and
a query that fails is logged with its error, quotes and line breaks included (the buffer escapes them).
"""

from __future__ import annotations

import logging
import time

import pytest

from speed_layer.job import install_progress
from speed_layer.progress import drain_all, read_progress
from warehouse_models.settings import Settings


def _wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_each_micro_batch_reaches_redis_and_a_failure_is_logged(spark, redis_service, isolated: Settings, caplog):
    from pyspark.sql import functions as F

    install_progress(spark, isolated)
    client = isolated.redis_client()
    name = isolated.speed_query_name("probe")
    query = (spark.readStream.format("rate").option("rowsPerSecond", 50).load()
             .writeStream.format("noop").queryName(name).trigger(processingTime="200 milliseconds").start())
    try:
        def batches() -> int:
            rows = {row["name"]: row for row in read_progress(client, isolated.keys)}
            return int(rows[name]["batch_id"]) if name in rows else -1

        _wait_for(lambda: batches() >= 3)
        assert batches() >= 3
    finally:
        query.stop()
    row = {r["name"]: r for r in read_progress(client, isolated.keys)}[name]
    assert int(row["batch_duration_ms"]) > 0 and "addBatch=" in row["phase_ms"]

    # A query whose batch fails: its error (with quotes and a line break) is logged whole.
    failing_name = isolated.speed_query_name("failing")
    message = 'a "quoted" reason\nand a second line'
    failing = (spark.readStream.format("rate").option("rowsPerSecond", 5).load()
               .select(F.when(F.col("value") >= 0, F.raise_error(F.lit(message))).alias("x"))
               .writeStream.format("noop").queryName(failing_name).start())
    with caplog.at_level(logging.INFO, logger="speed_layer.progress"):
        with pytest.raises(Exception, match="quoted"):
            failing.awaitTermination(60)
        _wait_for(lambda: any("stopped with an error" in r.getMessage() for r in caplog.records), 10)
        drain_all()
    errors = [r.getMessage() for r in caplog.records if "stopped with an error" in r.getMessage()]
    assert errors and message in errors[0]

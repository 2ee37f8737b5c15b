"""The ingestion benchmark: the collector against the raw producer in one run, and the bronze ingest rate."""

from __future__ import annotations

import logging

from bench.harness import BenchContext, Outcome, benchmark

logger = logging.getLogger(__name__)


@benchmark("ingestion", packages=("confluent-kafka", "starlette", "uvicorn", "orjson", "pyspark", "delta-spark"))
def ingestion(ctx: BenchContext) -> Outcome:
    """Collector events/s and accept latency at batch 1/100/1000 vs the raw producer; bronze records/s."""
    from datetime import datetime, timedelta, timezone

    from bench.ingestion_bronze import measure_bronze
    from bench.ingestion_collector import measure_collector
    from simulator import SimulationConfig

    ctx.progress("collector vs raw producer")
    if ctx.quick:
        figures = measure_collector(ctx.settings, events=20_000, single_events=1_000)
    else:
        figures = measure_collector(ctx.settings)
    ctx.progress("bronze ingest of a simulated %s", "10 minutes" if ctx.quick else "hour")
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
    span = timedelta(minutes=10) if ctx.quick else timedelta(hours=1)
    bronze = measure_bronze(ctx.settings, config=SimulationConfig(start=end - span, duration=span))
    figures["bronze_records_per_s"] = round(bronze["bronze_records_per_s"])
    return Outcome(
        figures=figures,
        targets={"collector_eps_batch1000": ">= 50000", "collector_to_raw_ratio": ">= 0.5"},
        notes={
            "bronze_records": bronze["records"],
            "bronze_seconds": round(bronze["bronze_seconds"], 1),
            "bronze_records_per_table": bronze["records_per_table"],
            "collector": "two uvicorn workers (uvloop, httptools), 8 requests in flight; the load client, the "
                         "collector and the Kafka broker share the machine's two cores",
        },
    )

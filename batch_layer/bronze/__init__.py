"""Bronze: every Kafka record, raw and parsed, with its topic/partition/offset, in Delta tables by ingest date."""

from __future__ import annotations

from batch_layer.bronze.job import (
    BronzeError,
    checkpoint_location,
    ensure_bronze_table,
    run_bronze_available_now,
    run_bronze_continuous,
    start_bronze,
)

__all__ = [
    "BronzeError",
    "checkpoint_location",
    "ensure_bronze_table",
    "run_bronze_available_now",
    "run_bronze_continuous",
    "start_bronze",
]

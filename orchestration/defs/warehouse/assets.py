"""Warehouse assets: bronze from Kafka, silver event hours, the gold star schema and the marts, all on Spark."""

# No `from __future__ import annotations` here: Dagster reads the annotations of the context parameter.

import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    multi_asset,
)

from orchestration.defs.warehouse.partitions import daily_partitions, hourly_partitions
from orchestration.resources import ReelyticsSettingsResource, SparkResource
from warehouse_models.marts import MART_TABLES

GROUP = "warehouse"
SPARK_TAGS = {"reelytics/spark": "true"}
"""Marks every Spark step (and, on the jobs, every run) so the run coordinator runs one at a time."""

SPARK_RETRY = RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL)
"""A failed Spark step is retried twice, 30 s then 60 s later (a busy broker or a lost executor)."""

HOURS_PER_RUN = 24
"""A backfill runs up to this many hourly partitions of the hourly assets as one run (a day): silver builds them
in one Spark pass, so each build's fixed cost is paid once a day, not once an hour."""

HOURLY_BACKFILL = BackfillPolicy.multi_run(max_partitions_per_run=HOURS_PER_RUN)

PREVIEW_ROWS = 5


def _markdown(rows: Sequence[Any], columns: Sequence[str]) -> str:
    """A small markdown table of Spark rows (only the named columns)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def _preview(spark: Any, path: str, where: Any, columns: Sequence[str]) -> MetadataValue:
    """A markdown preview of a few rows of a Delta table selected by ``where``."""
    rows = spark.read.format("delta").load(path).where(where).select(*columns).limit(PREVIEW_ROWS).collect()
    return MetadataValue.md(_markdown(rows, columns))


def _hours(context: AssetExecutionContext) -> Sequence[datetime]:
    """The UTC hours (aware) of the run's hourly partitions: one for a scheduled run, up to
    :data:`HOURS_PER_RUN` for a backfill."""
    from batch_layer.silver.job import hours_between

    window = context.partition_time_window
    return hours_between(window.start, window.end)


def _day(context: AssetExecutionContext) -> date:
    """The UTC date a daily partition (or the date holding an hourly partition) names."""
    return context.partition_time_window.start.date()


@asset(
    group_name=GROUP,
    kinds={"spark", "delta", "kafka"},
    partitions_def=hourly_partitions,
    deps=[AssetKey("kafka_topics")],
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
    backfill_policy=HOURLY_BACKFILL,
)
def bronze(context: AssetExecutionContext, settings: ReelyticsSettingsResource,
           spark: SparkResource) -> MaterializeResult:
    """Every bronze table brought up to what the Kafka topics hold now (availableNow): whatever the topics hold
    lands, not only the partition's hour, so the hour partition records when the run happened, not what it read.
    """
    from batch_layer.bronze.job import ProgressLog, run_bronze_available_now

    s = settings.get()
    started = time.monotonic()
    added = run_bronze_available_now(s, spark.get(), on_progress=ProgressLog())
    seconds = round(time.monotonic() - started, 3)
    keys = context.partition_key_range
    context.log.info("bronze for partitions %s..%s added %s in %.1f s", keys.start, keys.end, added, seconds)
    return MaterializeResult(metadata={
        "rows_added": MetadataValue.int(sum(added.values())),
        "rows_added_per_table": MetadataValue.json(added),
        "seconds": MetadataValue.float(seconds),
    })


@asset(
    group_name=GROUP,
    kinds={"spark", "delta"},
    partitions_def=hourly_partitions,
    deps=[bronze],
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
    backfill_policy=HOURLY_BACKFILL,
)
def silver_events(context: AssetExecutionContext, settings: ReelyticsSettingsResource,
                  spark: SparkResource) -> MaterializeResult:
    """The partition's event hour of ``silver_events`` (a backfill: its run's hours, in one build), rebuilt whole
    from bronze (late events re-open their hour), and its sessions' rows in ``silver_session_hours``; other hours
    whose slimmed events it fills are rebuilt too."""
    from pyspark.sql import functions as F

    from batch_layer.silver.job import build_silver
    from warehouse_models.tables import SILVER_EVENTS

    s, session = settings.get(), spark.get()
    hours = _hours(context)
    started = time.monotonic()
    counts = build_silver(session, s, hours=hours)
    seconds = round(time.monotonic() - started, 3)
    context.log.info("silver_events %s (%d hours): %s in %.1f s", hours[0].isoformat(), len(hours), counts, seconds)
    return MaterializeResult(metadata={
        "rows": MetadataValue.int(counts["rows"]),
        "late_rows": MetadataValue.int(counts["late_rows"]),
        "hours_rebuilt": MetadataValue.json([hour.isoformat() for hour in hours]),
        "other_hours_reopened": MetadataValue.int(counts["reopened"]),
        "seconds": MetadataValue.float(seconds),
        "preview": _preview(session, SILVER_EVENTS.path(s.delta_root_uri), F.col("event_hour").isin(list(hours)),
                            ["event_id", "event_type", "event_timestamp", "user_id", "is_late"]),
    })


@asset(
    group_name=GROUP,
    kinds={"spark", "delta"},
    partitions_def=hourly_partitions,
    deps=[silver_events],
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
    backfill_policy=HOURLY_BACKFILL,
)
def fact_stream_events(context: AssetExecutionContext, settings: ReelyticsSettingsResource,
                       spark: SparkResource) -> MaterializeResult:
    """The dates holding the run's hours of ``fact_stream_events``, rebuilt from silver (hourly, so today's facts
    follow each silver hour; the Delta table stays partitioned by date, and the whole date is rewritten).
    """
    from pyspark.sql import functions as F

    from batch_layer.gold.job import build_fact, dates_of_hours
    from warehouse_models.tables import FACT_STREAM_EVENTS

    s, session = settings.get(), spark.get()
    dates = sorted(dates_of_hours(_hours(context)))
    started = time.monotonic()
    counts = build_fact(session, s, dates=dates)
    seconds = round(time.monotonic() - started, 3)
    context.log.info("fact_stream_events %s: %s in %.1f s", dates, counts, seconds)
    return MaterializeResult(metadata={
        "rows": MetadataValue.int(counts["rows"]),
        "dates_rebuilt": MetadataValue.json([d.isoformat() for d in dates]),
        "seconds": MetadataValue.float(seconds),
        "preview": _preview(session, FACT_STREAM_EVENTS.path(s.delta_root_uri), F.col("event_date").isin(dates),
                            ["event_id", "event_type", "event_date", "user_id", "content_id"]),
    })


@multi_asset(
    group_name=GROUP,
    specs=[
        AssetSpec("dim_content", deps=[bronze], kinds={"spark", "delta"},
                  description="Titles and channels, rebuilt whole from every bronze catalog record."),
        AssetSpec("dim_users", deps=[bronze], kinds={"spark", "delta"},
                  description="User profile versions (SCD2), rebuilt whole from every bronze catalog record."),
    ],
    partitions_def=daily_partitions,
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
)
def dimensions(context: AssetExecutionContext, settings: ReelyticsSettingsResource,
               spark: SparkResource) -> Iterator[MaterializeResult]:
    """``dim_content`` and ``dim_users`` rebuilt whole from the bronze catalog (the date records when)."""
    from batch_layer.gold.job import build_dims
    from warehouse_models.tables import DIM_CONTENT, DIM_USERS

    s, session = settings.get(), spark.get()
    started = time.monotonic()
    counts = build_dims(session, s)
    seconds = round(time.monotonic() - started, 3)
    context.log.info("dimensions for %s: %s in %.1f s", context.partition_key, counts, seconds)
    root = s.delta_root_uri
    yield MaterializeResult(asset_key="dim_content", metadata={
        "rows": MetadataValue.int(counts["content_rows"]),
        "seconds": MetadataValue.float(seconds),
        "preview": _preview(session, DIM_CONTENT.path(root), "true", DIM_CONTENT.column_names[:4]),
    })
    yield MaterializeResult(asset_key="dim_users", metadata={
        "rows": MetadataValue.int(counts["user_rows"]),
        "current_users": MetadataValue.int(counts["current_users"]),
        "seconds": MetadataValue.float(seconds),
        "preview": _preview(session, DIM_USERS.path(root), "true", DIM_USERS.column_names[:4]),
    })


@multi_asset(
    group_name=GROUP,
    specs=[AssetSpec(spec.name, deps=["fact_stream_events", "dim_content", "dim_users"], kinds={"spark", "delta"},
                     description=spec.doc, skippable=True) for spec in MART_TABLES],
    partitions_def=daily_partitions,
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
)
def marts(context: AssetExecutionContext, settings: ReelyticsSettingsResource,
          spark: SparkResource) -> Iterator[MaterializeResult]:
    """Every mart's partition of the date, computed from the gold star schema (a skipped mart is not reported)."""
    from pyspark.sql import functions as F

    from batch_layer.marts.job import build_marts

    s, session = settings.get(), spark.get()
    day = _day(context)
    build = build_marts(session, s, dates=[day])
    for name, reason in build.skipped.items():
        context.log.warning("%s skipped for %s: %s", name, day.isoformat(), reason)
    for spec in MART_TABLES:
        if spec.name not in build.rows:
            continue
        yield MaterializeResult(asset_key=spec.name, metadata={
            "rows": MetadataValue.int(build.rows[spec.name]),
            "dates_rebuilt": MetadataValue.json([day.isoformat()]),
            "seconds": MetadataValue.float(build.seconds[spec.name]),
            "preview": _preview(session, spec.path(s.delta_root_uri), F.col("event_date") == F.lit(day),
                                spec.column_names[:4]),
        })


WAREHOUSE_ASSETS = [bronze, silver_events, fact_stream_events, dimensions, marts]
HOURLY_ASSETS = [bronze, silver_events, fact_stream_events]
DAILY_ASSETS = [dimensions, marts]

"""Warehouse asset checks: the great-expectations suites of ``batch_layer.quality`` on the partition just written.

The correctness checks are blocking with ERROR severity: in a run, the assets downstream of a failed one are not
materialized (silver_events' check stops fact_stream_events; the dimensions' checks stop the marts). Across runs,
:data:`BLOCKING_CHECKS` lists them for the publication gate
(``orchestration.defs.publish.checks.blocking_check_failures``), which reports each whose latest evaluation failed.
Freshness is a WARN and blocks nothing.
Every result carries the failed expectations (rule, column, bad rows, sample values) and a short ``why`` in its
metadata.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations of the context parameter.

import importlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from orchestration.defs.warehouse.assets import fact_stream_events, silver_events
from orchestration.defs.warehouse.partitions import daily_partitions, hourly_partitions
from orchestration.resources import ReelyticsSettingsResource
from warehouse_models.marts import MART_TABLES

MAX_FAILURES_SHOWN = 20
"""A result lists at most this many failed expectations in its metadata (the count says how many there were)."""

MAX_DESCRIPTION = 1000
"""Longest description of a result (the why on one line): enough for the first few failures and their samples."""


def _result(outcome: Any, *, severity: AssetCheckSeverity, seconds: float,
            asset_key: str | None = None) -> AssetCheckResult:
    """The Dagster result of a :class:`batch_layer.quality.suite.CheckOutcome`, with what failed in metadata."""
    failures = [f.as_dict() for f in outcome.failures[:MAX_FAILURES_SHOWN]]
    metadata: dict[str, Any] = {
        "why": MetadataValue.md(outcome.why.replace("\n- ", "\n\n- ")),
        "scope": MetadataValue.text(outcome.scope),
        "rows_checked": MetadataValue.int(outcome.rows),
        "expectations": MetadataValue.int(outcome.expectations),
        "failed_expectations": MetadataValue.int(len(outcome.failures)),
        "failures": MetadataValue.json(failures),
        "seconds": MetadataValue.float(seconds),
    }
    if outcome.failures:
        first = outcome.failures[0]
        metadata["first_failure"] = MetadataValue.text(first.sentence())
        metadata["bad_rows"] = MetadataValue.int(sum(f.bad_rows or 0 for f in outcome.failures))
    # The description is what the publication gate quotes when it refuses to publish: the whole why, on one line.
    description = " ".join(outcome.why.splitlines())
    if len(description) > MAX_DESCRIPTION:
        description = description[:MAX_DESCRIPTION - 1] + "…"
    return AssetCheckResult(passed=outcome.passed, severity=severity, metadata=metadata, description=description,
                            asset_key=asset_key)


def _timed(context: AssetCheckExecutionContext, run: Callable[[], Any]) -> tuple[Any, float]:
    """Run a quality check, log its why, and time it."""
    started = time.monotonic()
    outcome = run()
    seconds = round(time.monotonic() - started, 3)
    (context.log.info if outcome.passed else context.log.error)("%s (%.1f s)", outcome.why, seconds)
    return outcome, seconds


def _start(context: AssetCheckExecutionContext) -> datetime:
    """The UTC start of the check's partition (the hour or the date the asset just wrote), aware."""
    return context.partition_time_window.start


def _hours(context: AssetCheckExecutionContext) -> list[datetime]:
    """The UTC hours of the run's hourly partitions (one, or a backfill's range), aware."""
    from batch_layer.silver.job import hours_between

    window = context.partition_time_window
    return list(hours_between(window.start, window.end))


def _scope(name: str, hours: list[datetime]) -> str:
    """How a check over a backfill's hours names what it read."""
    return f"{name} {hours[0].isoformat()} .. {hours[-1].isoformat()} ({len(hours)} hours)"


@asset_check(asset=silver_events, blocking=True, partitions_def=hourly_partitions,
             description="The event hour: event_id present and unique, NOT NULL columns filled, event types and "
                         "the envelope's closed sets and ranges respected, rows == distinct valid bronze event_ids "
                         "of the hour.")
def silver_events_quality(context: AssetCheckExecutionContext,
                          settings: ReelyticsSettingsResource) -> AssetCheckResult:
    """Blocking: a failure keeps fact_stream_events (and so the marts and publication) from this hour's data."""
    from batch_layer.quality.silver_events import check_silver_hour
    from batch_layer.quality.suite import merged

    s, hours = settings.get(), _hours(context)
    outcome, seconds = _timed(context, lambda: merged([check_silver_hour(s, hour) for hour in hours],
                                                      scope=_scope("event_hour", hours)))
    return _result(outcome, severity=AssetCheckSeverity.ERROR, seconds=seconds)


@asset_check(asset=silver_events, blocking=False, partitions_def=hourly_partitions,
             description="The newest event time in silver_events is within quality_freshness_max_age_seconds of now.")
def silver_events_freshness(context: AssetCheckExecutionContext,
                            settings: ReelyticsSettingsResource) -> AssetCheckResult:
    """A warning only: old data is still correct data (a backfill of past hours is expected to warn)."""
    from batch_layer.quality.silver_events import check_silver_freshness

    outcome, seconds = _timed(context, lambda: check_silver_freshness(settings.get()))
    return _result(outcome, severity=AssetCheckSeverity.WARN, seconds=seconds)


@asset_check(asset=fact_stream_events, blocking=True, partitions_def=hourly_partitions,
             additional_deps=[AssetKey("dim_content"), AssetKey("dim_users")],
             description="The date holding the hour: event_id present and unique, NOT NULL columns filled, enums "
                         "and ranges, every content_id in dim_content and user_id in dim_users, positions within "
                         "the title's duration (plus a tolerance), rows == silver rows of the date.")
def fact_stream_events_quality(context: AssetCheckExecutionContext,
                               settings: ReelyticsSettingsResource) -> AssetCheckResult:
    """Blocking: a failure keeps the marts and publication from this date's facts."""
    from batch_layer.gold.job import dates_of_hours
    from batch_layer.quality.fact_stream_events import check_fact_date
    from batch_layer.quality.suite import merged

    s, hours = settings.get(), _hours(context)
    days = sorted(dates_of_hours(hours))
    outcome, seconds = _timed(context, lambda: merged([check_fact_date(s, day) for day in days],
                                                      scope=_scope("the dates of event hours", hours)))
    return _result(outcome, severity=AssetCheckSeverity.ERROR, seconds=seconds)


def _dimension_check(table: str, description: str) -> AssetChecksDefinition:
    """The blocking check of a dimension rebuilt whole: ``batch_layer.quality.<table>.check_<table>`` on all of it."""

    @asset_check(asset=table, name=f"{table}_quality", blocking=True, partitions_def=daily_partitions,
                 description=description)
    def dimension_quality(context: AssetCheckExecutionContext,
                          settings: ReelyticsSettingsResource) -> AssetCheckResult:
        """Blocking: a failure keeps the marts of the date from being built on a broken dimension."""
        run = getattr(importlib.import_module(f"batch_layer.quality.{table}"), f"check_{table}")
        outcome, seconds = _timed(context, lambda: run(settings.get()))
        return _result(outcome, severity=AssetCheckSeverity.ERROR, seconds=seconds)

    return dimension_quality


dim_content_quality = _dimension_check(
    "dim_content", "content_id present and unique, NOT NULL columns filled, content type, age rating and duration "
                   "within the envelope's sets and ranges.")
dim_users_quality = _dimension_check(
    "dim_users", "(user_id, valid_from) and user_key unique, exactly one current version per user, versions ending "
                 "after they start, plans within the envelope's sets and ranges.")


def mart_check_name(mart: str) -> str:
    """The name of a mart's quality check."""
    return f"{mart}_quality"


@multi_asset_check(
    specs=[AssetCheckSpec(mart_check_name(spec.name), asset=spec.name, blocking=True, partitions_def=daily_partitions,
                          description=f"Every NOT NULL column of {spec.name} is filled in the date.")
           for spec in MART_TABLES],
)
def marts_quality(context: AssetCheckExecutionContext,
                  settings: ReelyticsSettingsResource) -> Iterator[AssetCheckResult]:
    """Every mart's date, one result per mart (one step, so the check libraries load once for the seven)."""
    from batch_layer.quality.marts import check_mart_date

    s, day = settings.get(), _start(context).date()
    for spec in MART_TABLES:
        outcome, seconds = _timed(context, partial(check_mart_date, s, spec, day))
        yield _result(outcome, severity=AssetCheckSeverity.ERROR, seconds=seconds, asset_key=spec.name)


WAREHOUSE_CHECKS = [silver_events_quality, silver_events_freshness, fact_stream_events_quality, dim_content_quality,
                    dim_users_quality, marts_quality]

BLOCKING_CHECKS: tuple[tuple[str, str], ...] = (
    ("silver_events", "silver_events_quality"),
    ("fact_stream_events", "fact_stream_events_quality"),
    ("dim_content", "dim_content_quality"),
    ("dim_users", "dim_users_quality"),
    *((spec.name, mart_check_name(spec.name)) for spec in MART_TABLES),
)
"""(asset key, check name) of every blocking check: publication requires the latest evaluation of each to pass."""

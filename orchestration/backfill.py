"""Backfills of the warehouse assets over a range of event hours and dates, run here or by the Dagster daemon.

:func:`plan_backfill` turns a ``--start``/``--end`` pair (dates, or hours) into the hourly partitions (bronze,
silver_events, fact_stream_events) and the daily partitions (dimensions, marts) that cover it; only closed
partitions exist (``end_offset=0``), so the hour in progress and today are refused or left to the schedules.

:func:`run_backfill` materializes the plan in this process against a Dagster instance: the hourly partitions
first, one run per date's hours (a range run, as the hourly assets' backfill policy asks: silver builds a day's
hours in one Spark pass), then one run per daily partition, so every run and materialization shows in the Dagster
UI. Bronze reads whatever the topics hold, so it runs with the first hourly run only; the other runs rebuild
silver and facts. :func:`submit_backfill` instead records a Dagster asset backfill that the daemon runs (the UI's
Backfills tab shows it). Partitions are overwritten whole, so running a range again is safe.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as day_time
from typing import TYPE_CHECKING, Any, Literal

from batch_layer.silver.job import hours_between, utc_hour
from orchestration.defs.warehouse.partitions import HOUR_KEY_FORMAT, START_DATE, hour_key

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

logger = logging.getLogger(__name__)

AssetsChoice = Literal["hourly", "daily", "all"]

DAY_KEY_FORMAT = "%Y-%m-%d"
"""How a daily partition key spells its date."""

BACKFILL_TAG = "reelytics/backfill"
"""Tag on every run of an in-process backfill: its label, to find the runs of one backfill in the UI."""

_BOUND_RE = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<hour>\d{1,2})(?::00)?(?::00)?Z?)?$")


class BackfillRangeError(ValueError):
    """The range cannot be backfilled; the message says what to give instead."""


@dataclass(frozen=True)
class BackfillPlan:
    """The partitions a backfill materializes, in the order it runs them."""

    hourly_keys: tuple[str, ...]
    daily_keys: tuple[str, ...]
    left_out_days: tuple[str, ...] = ()
    """Dates the range touches that have not closed yet (their hours are built; the nightly run builds them)."""

    @property
    def total(self) -> int:
        return len(self.hourly_keys) + len(self.daily_keys)

    def title(self) -> str:
        """A short name for the Dagster backfill (Dagster allows 100 characters): the first and last partition."""
        keys = self.hourly_keys + self.daily_keys
        first, last = min(keys), max(keys)
        return f"reelytics backfill {first}" + (f" .. {last}" if last != first else "")

    def describe(self) -> str:
        """One line naming the partitions, for the command's first output."""
        parts = []
        if self.hourly_keys:
            parts.append(f"{len(self.hourly_keys)} hourly partition{'s' * (len(self.hourly_keys) != 1)} "
                         f"({self.hourly_keys[0]} .. {self.hourly_keys[-1]})")
        if self.daily_keys:
            parts.append(f"{len(self.daily_keys)} daily partition{'s' * (len(self.daily_keys) != 1)} "
                         f"({self.daily_keys[0]} .. {self.daily_keys[-1]})")
        return " then ".join(parts)


def parse_bound(text: str, *, end: bool) -> datetime:
    """A ``--start``/``--end`` value as the aware UTC hour it names.

    ``2026-11-20`` names the whole date: its first hour as a start, its last hour as an end (both inclusive).
    ``2026-11-20T14`` (or ``2026-11-20T14:00``, ``2026-11-20 14:00``) names one hour.
    """
    match = _BOUND_RE.match(text.strip())
    if match is None:
        raise BackfillRangeError(f"{text!r} is neither a date (2026-11-20) nor an hour (2026-11-20T14), in UTC")
    try:
        day = date.fromisoformat(match["date"])
    except ValueError as exc:
        raise BackfillRangeError(f"{text!r}: {exc}") from exc
    if match["hour"] is None:
        return datetime.combine(day, day_time(23 if end else 0), tzinfo=timezone.utc)
    hour = int(match["hour"])
    if hour > 23:
        raise BackfillRangeError(f"{text!r}: the hour must be 0 to 23")
    return datetime.combine(day, day_time(hour), tzinfo=timezone.utc)


def plan_backfill(start: str, end: str, *, assets: AssetsChoice = "all", now: datetime) -> BackfillPlan:
    """The hourly and daily partitions of the inclusive range ``start`` .. ``end`` that ``assets`` selects.

    Args:
        start: a date or an hour (see :func:`parse_bound`), UTC.
        end: a date or an hour, inclusive.
        assets: ``hourly`` (bronze, silver_events, fact_stream_events), ``daily`` (dims and marts) or ``all``.
        now: the current time (aware); the hour in progress and today are not partitions yet.

    Raises:
        BackfillRangeError: the range is reversed, starts before the first partition, reaches into the hour in
            progress, or selects no closed partition; the message says what to give instead.
    """
    first, last = parse_bound(start, end=False), parse_bound(end, end=True)
    if last < first:
        raise BackfillRangeError(f"--end {end} is before --start {start}; give the earlier time as --start")
    earliest = datetime.fromisoformat(START_DATE).replace(tzinfo=timezone.utc)
    if first < earliest:
        raise BackfillRangeError(f"--start {start} is before the first partition ({START_DATE}); start on or "
                                 f"after {START_DATE}")
    open_hour = utc_hour(now)
    hours = list(hours_between(first, last + timedelta(hours=1)))
    days = sorted({h.date() for h in hours})
    closed_days = [d for d in days if d < open_hour.date()]
    left_out = [d for d in days if d >= open_hour.date()]
    if assets in ("hourly", "all") and hours[-1] >= open_hour:
        last_closed = open_hour - timedelta(hours=1)
        raise BackfillRangeError(
            f"the hour {hours[-1].strftime(HOUR_KEY_FORMAT)} has not closed yet (it is now "
            f"{now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC); end at {last_closed:%Y-%m-%dT%H} or earlier, "
            "and let the hourly schedule build the rest")
    if assets == "daily" and not closed_days:
        raise BackfillRangeError(f"no closed date in {start} .. {end}: a date is built after it ends (UTC); "
                                 f"give dates up to {open_hour.date() - timedelta(days=1)}")
    hourly = tuple(hour_key(h) for h in hours) if assets in ("hourly", "all") else ()
    daily = tuple(d.strftime(DAY_KEY_FORMAT) for d in closed_days) if assets in ("daily", "all") else ()
    return BackfillPlan(hourly, daily, tuple(d.isoformat() for d in left_out) if assets != "hourly" else ())


# --- running in this process -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionRun:
    """One run: its job, partition key (``first...last`` for a range of hours), outcome, seconds, rows per asset,
    the error when it failed, and how many partitions it materialized."""

    job: str
    partition_key: str
    run_id: str
    success: bool
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    partitions: int = 1

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass
class BackfillResult:
    """Every partition run of a backfill, in order; it stops at the first failure."""

    label: str
    runs: list[PartitionRun] = field(default_factory=list)

    @property
    def failed(self) -> PartitionRun | None:
        return next((run for run in self.runs if not run.success), None)

    @property
    def seconds(self) -> float:
        return round(sum(run.seconds for run in self.runs), 3)

    @property
    def partitions_done(self) -> int:
        """Partitions materialized by the successful runs."""
        return sum(run.partitions for run in self.runs if run.success)

    def rows_per_asset(self) -> dict[str, int]:
        """Rows the runs reported per asset, added over the partitions (a date rebuilt by several hourly runs of
        ``fact_stream_events`` counts once per run)."""
        totals: dict[str, int] = {}
        for run in self.runs:
            for asset, rows in run.rows.items():
                totals[asset] = totals.get(asset, 0) + rows
        return totals


def hourly_runs(keys: Sequence[str], *, per_run: int) -> list[tuple[str, str, int]]:
    """The hourly partition keys (in order) as runs: the first and last key and the number of hours of each, the
    consecutive hours of one UTC date, at most ``per_run`` of them."""
    runs: list[list[str]] = []
    for key in keys:
        if runs and len(runs[-1]) < per_run and runs[-1][-1][:10] == key[:10]:
            runs[-1].append(key)
        else:
            runs.append([key])
    return [(run[0], run[-1], len(run)) for run in runs]


def _partition_args(first: str, last: str) -> dict[str, Any]:
    """How ``execute_in_process`` is told its partition: one key, or a range by Dagster's range tags."""
    if first == last:
        return {"partition_key": first, "tags": {}}
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    return {"partition_key": None,
            "tags": {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}}


HOURLY_JOB = "warehouse_hourly"
DAILY_JOB = "warehouse_daily"
BRONZE_KEY = "bronze"


def instance_for(home: Any) -> DagsterInstance:
    """The Dagster instance of a DAGSTER_HOME directory (created with Reelytics' dagster.yaml when missing)."""
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(home))


def _rows(result: Any) -> dict[str, int]:
    """Rows per asset from a run's materializations (the ``rows`` metadata, else ``rows_added``)."""
    rows: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata = materialization.metadata
        value = metadata.get("rows", metadata.get("rows_added"))
        if value is not None:
            rows[materialization.asset_key.to_user_string()] = int(value.value)
    return rows


def _error(result: Any) -> str:
    """The first step failure's message of a failed run."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            return f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
    return "the run failed (see its logs in the Dagster UI)"


def run_backfill(plan: BackfillPlan, *, instance: DagsterInstance, defs: Definitions | None = None,
                 label: str | None = None,
                 on_partition: Callable[[int, int, PartitionRun], None] | None = None) -> BackfillResult:
    """Materialize the plan's partitions in this process, a run per date's hours (:func:`hourly_runs`) and per
    daily partition; stop at the first failure.

    Args:
        plan: from :func:`plan_backfill`.
        instance: where the runs and materializations are recorded (the UI's instance).
        defs: the definitions whose jobs run (default: ``orchestration.definitions.defs``).
        label: the value of the runs' ``reelytics/backfill`` tag (default: a timestamp).
        on_partition: called with (done, total, run) after each partition.
    """
    from dagster import AssetKey

    if defs is None:
        from orchestration.definitions import defs as default_defs

        defs = default_defs
    label = label or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = BackfillResult(label)
    hourly_job, daily_job = defs.resolve_job_def(HOURLY_JOB), defs.resolve_job_def(DAILY_JOB)
    hourly_without_bronze = [key for key in hourly_job.asset_layer.executable_asset_keys
                             if key != AssetKey(BRONZE_KEY)]
    from orchestration.defs.warehouse.assets import HOURS_PER_RUN

    work: list[tuple[Any, tuple[str, str], int, Sequence[Any] | None]] = [
        (hourly_job, (first, last), size, None if n == 0 else hourly_without_bronze)
        for n, (first, last, size) in enumerate(hourly_runs(plan.hourly_keys, per_run=HOURS_PER_RUN))
    ]
    work += [(daily_job, (key, key), 1, None) for key in plan.daily_keys]
    for done, (job, (first, last), size, selection) in enumerate(work, start=1):
        started = time.monotonic()
        key = first if first == last else f"{first}...{last}"
        partition = _partition_args(first, last)
        executed = job.execute_in_process(instance=instance, partition_key=partition["partition_key"],
                                          asset_selection=selection, raise_on_error=False,
                                          tags={**partition["tags"], BACKFILL_TAG: label})
        run = PartitionRun(job.name, key, executed.run_id, executed.success, round(time.monotonic() - started, 3),
                           _rows(executed), None if executed.success else _error(executed), size)
        result.runs.append(run)
        logger.info("backfill %s: %d/%d %s %s %s in %.1f s", label, done, len(work), job.name, key,
                    "done" if run.success else "FAILED", run.seconds)
        if on_partition is not None:
            on_partition(done, len(work), run)
        if not run.success:
            break
    return result


# --- submitting to the daemon ------------------------------------------------------------------------------------


def submit_backfill(plan: BackfillPlan, *, instance: DagsterInstance, defs: Definitions | None = None,
                    tags: dict[str, str] | None = None) -> str:
    """Record a Dagster asset backfill of the plan's partitions for the daemon to run; return its id.

    The hourly assets get the plan's hour range and the daily assets its date range; the daemon runs them in
    dependency order under the instance's run queue (one Spark run at a time).
    """
    from dagster._core.definitions.selector import (
        PartitionRangeSelector,
        PartitionsByAssetSelector,
        PartitionsSelector,
    )
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from orchestration.defs.warehouse.assets import SPARK_TAGS

    if defs is None:
        from orchestration.definitions import defs as default_defs

        defs = default_defs
    selectors = []
    for job_name, keys in ((HOURLY_JOB, plan.hourly_keys), (DAILY_JOB, plan.daily_keys)):
        if not keys:
            continue
        ranges = PartitionsSelector(ranges=[PartitionRangeSelector(start=keys[0], end=keys[-1])])
        for asset_key in sorted(defs.resolve_job_def(job_name).asset_layer.executable_asset_keys):
            selectors.append(PartitionsByAssetSelector(asset_key=asset_key, partitions=ranges))
    backfill_id = make_new_backfill_id()
    backfill = PartitionBackfill.from_partitions_by_assets(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        backfill_timestamp=time.time(),
        tags={**SPARK_TAGS, **(tags or {})},
        dynamic_partitions_store=instance,
        partitions_by_assets=selectors,
        title=plan.title(),
        description=f"Submitted by `reelytics backfill --submit`: {plan.describe()}.",
        run_config=None,
    )
    instance.add_backfill(backfill)
    logger.info("submitted backfill %s: %s", backfill_id, plan.describe())
    return backfill_id

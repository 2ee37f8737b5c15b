"""`reelytics backfill`: build the warehouse for a range of event hours and dates, here or by the Dagster daemon."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from warehouse_models.settings import load_settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from orchestration.backfill import BackfillPlan, BackfillResult, PartitionRun
    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

HELP = "\n\n".join((
    "Build the warehouse for a range of UTC event hours and dates: bronze, silver_events and fact_stream_events "
    "for every hour, then dim_content, dim_users and the seven marts for every date.",
    "\b\nExamples:\n"
    "  # two whole days: 48 hourly partitions, then 2 daily ones\n"
    "  reelytics backfill --start 2026-11-20 --end 2026-11-21\n"
    "  # three hours (14:00, 15:00 and 16:00 UTC) and their date\n"
    "  reelytics backfill --start 2026-11-20T14 --end 2026-11-20T16\n"
    "  # only the dims and marts of a date whose hours are built\n"
    "  reelytics backfill --start 2026-11-20 --end 2026-11-20 --assets daily\n"
    "  # a month, run by the Dagster daemon (see the UI's Backfills tab)\n"
    "  reelytics backfill --start 2026-11-01 --end 2026-11-30 --submit",
    "By default the runs happen in this process against the Dagster instance of the settings "
    "(REELYTICS_DAGSTER_HOME, default <data dir>/dagster), one run per partition, so they show in the Dagster UI "
    "(`reelytics up`) like scheduled runs. Bronze reads whatever the Kafka topics hold, so it runs with the first "
    "hour only. Partitions are overwritten whole: running a range again is safe. Then query the tables with "
    "`reelytics sql`.",
    "With --submit the command only records a Dagster backfill and prints its id and URL; the Dagster daemon "
    "(started by `reelytics up`) runs it.",
))
"""The command's help: what it builds, examples, where the runs happen."""


class AssetChoice(StrEnum):
    """Which warehouse assets a backfill builds."""

    hourly = "hourly"
    daily = "daily"
    all = "all"


def _summary(result: BackfillResult, plan_total: int) -> Table:
    table = Table(title=f"backfill {result.label}: {result.partitions_done}/{plan_total} partitions "
                        f"in {result.seconds:.1f} s")
    table.add_column("asset")
    table.add_column("rows written (summed over runs)", justify="right")
    for asset, rows in sorted(result.rows_per_asset().items()):
        table.add_row(asset, f"{rows:,}")
    return table


def backfill(
    start: str = typer.Option(..., "--start", help="First UTC date (2026-11-20) or hour (2026-11-20T14)."),
    end: str = typer.Option(..., "--end", help="Last UTC date or hour, inclusive (a date means its last hour)."),
    assets: AssetChoice = typer.Option(AssetChoice.all, "--assets", case_sensitive=False,
                                       help="hourly (bronze, silver_events, fact_stream_events), daily (dims and "
                                            "marts) or all (hourly partitions first, then daily ones)."),
    submit: bool = typer.Option(False, "--submit", help="Submit a Dagster backfill for the daemon to run instead "
                                                        "of running here; prints its id and URL."),
) -> None:
    """Build the warehouse for a range of event hours and dates (see the examples)."""
    from infra import dagster as dagster_service
    from orchestration.backfill import BackfillRangeError, instance_for, plan_backfill

    console, errors = Console(), Console(stderr=True)
    settings = load_settings()
    try:
        plan = plan_backfill(start, end, assets=assets.value, now=datetime.now(timezone.utc))
    except BackfillRangeError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    home = dagster_service.prepare_home(settings)
    console.print(f"backfill of {plan.describe()} against the Dagster instance in {home}")
    for day in plan.left_out_days:
        console.print(f"[yellow]{day} has not ended yet:[/] its hours are built, its dims and marts are left to "
                      "the nightly schedule (or a backfill tomorrow)")
    with instance_for(home) as instance:
        if submit:
            _submit(plan, instance, console, dagster_service.url(settings))
            return
        _run_here(plan, instance, settings, console, errors, start=start, end=end)


def _submit(plan: BackfillPlan, instance: DagsterInstance, console: Console, url: str) -> None:
    """Record the backfill for the daemon and say where to follow it."""
    from orchestration.backfill import submit_backfill

    backfill_id = submit_backfill(plan, instance=instance)
    console.print(f"submitted backfill [cyan]{backfill_id}[/]: {plan.describe()}")
    console.print(f"follow it at {url}/runs/b/{backfill_id}?tab=partitions (the Dagster daemon runs it: "
                  "`reelytics status` shows whether Dagster is up, `reelytics up` starts it)")


def _run_here(plan: BackfillPlan, instance: DagsterInstance, settings: Settings, console: Console,
              errors: Console, *, start: str, end: str) -> None:
    """Run every partition here with a progress line each, a summary, and a non-zero exit on a failure."""
    from pyspark.sql import SparkSession

    from infra.process import ServiceError
    from infra.spark import build_spark_session
    from orchestration.backfill import run_backfill

    # One session for every run: the Spark resource uses the active session and leaves it running, rather than
    # starting a JVM per partition.
    owned = SparkSession.getActiveSession() is None
    try:
        spark = build_spark_session(settings, app_name="reelytics-backfill", ui=False)
    except ServiceError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc

    def progress(done: int, total: int, run: PartitionRun) -> None:
        rows = ", ".join(f"{asset} {count:,}" for asset, count in sorted(run.rows.items())) or "no rows reported"
        mark = "[green]done[/]" if run.success else "[red]FAILED[/]"
        console.print(f"[{done}/{total}] {run.job} {run.partition_key} {mark} in {run.seconds:.1f} s: {rows}")

    try:
        result = run_backfill(plan, instance=instance, on_partition=progress)
    finally:
        if owned:
            spark.stop()
    console.print(_summary(result, plan.total))
    failed = result.failed
    if failed is not None:
        errors.print(f"[red]error:[/] {failed.job} partition {failed.partition_key} failed (run {failed.run_id}): "
                     f"{escape(failed.error or '')}", highlight=False)
        errors.print(f"See the run's logs in the Dagster UI (/runs/{failed.run_id}), fix the cause, then run "
                     f"`reelytics backfill --start {start} --end {end}` again: every partition is overwritten "
                     "whole, so the ones that succeeded are safely rebuilt.", highlight=False)
        raise typer.Exit(1)
    console.print("query the result with `reelytics sql`, e.g. reelytics sql --tables")

"""`reelytics bronze`: land every Kafka record in the bronze Delta tables, once or as a long-lived stream."""

from __future__ import annotations

import logging
import time
from enum import StrEnum

import typer
from rich.console import Console
from rich.table import Table

from warehouse_models.settings import load_settings
from warehouse_models.tables import BRONZE_TABLES

logger = logging.getLogger(__name__)


class BronzeMode(StrEnum):
    """How the bronze job runs."""

    available_now = "available-now"
    continuous = "continuous"


def _summary(added: dict[str, int], elapsed: float, title: str) -> Table:
    table = Table(title=f"{title}: {sum(added.values()):,} records in {elapsed:.1f} s "
                        f"({sum(added.values()) / max(elapsed, 1e-9):,.0f}/s)")
    table.add_column("table")
    table.add_column("rows added", justify="right")
    for name, count in added.items():
        table.add_row(name, f"{count:,}")
    return table


def bronze(
    mode: BronzeMode = typer.Argument(BronzeMode.available_now, help="available-now: land what the topics hold now, "
                                      "then stop (what the hourly Dagster asset runs); continuous: a micro-batch "
                                      "every --processing-time until Ctrl-C."),
    processing_time: str = typer.Option("10 seconds", "--processing-time", help="Micro-batch interval of continuous "
                                        "mode (a Spark interval, e.g. '5 seconds')."),
    max_offsets_per_trigger: int | None = typer.Option(None, "--max-offsets-per-trigger", min=1, help="Most records "
                                                       "per micro-batch and topic (bounds memory on a large backlog)."),
) -> None:
    """Stream the topics into the bronze Delta tables (raw value, parsed fields, Kafka coordinates), exactly once."""
    from batch_layer.bronze.job import (
        BronzeError,
        ProgressLog,
        ensure_bronze_table,
        rows_added,
        run_bronze_available_now,
        start_bronze,
        table_version,
        wait_for,
    )
    from infra.process import ServiceError
    from infra.spark import build_spark_session

    console = Console()
    settings = load_settings()
    console.print(f"bronze ({mode.value}): topics [cyan]{settings.kafka_topic_prefix}.*[/] on "
                  f"{settings.kafka_bootstrap_servers} -> [cyan]{settings.delta_root_uri}/bronze[/] "
                  f"(checkpoints {settings.checkpoint_root_uri}/bronze)")
    try:
        spark = build_spark_session(settings, app_name=f"reelytics-bronze-{mode.value}")
    except ServiceError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    began = time.monotonic()
    try:
        if mode is BronzeMode.available_now:
            added = run_bronze_available_now(settings, spark, max_offsets_per_trigger=max_offsets_per_trigger,
                                             on_progress=ProgressLog())
            console.print(_summary(added, time.monotonic() - began, "bronze up to date"))
            return
        paths = {spec.name: ensure_bronze_table(spark, settings, spec) for spec in BRONZE_TABLES}
        before = {name: table_version(spark, path) for name, path in paths.items()}
        queries = start_bronze(settings, spark, trigger="continuous", processing_time=processing_time,
                               max_offsets_per_trigger=max_offsets_per_trigger)
        console.print(f"{len(queries)} queries running, a micro-batch every {processing_time}; Ctrl-C stops them "
                      "(a restart continues from the checkpoints).")
        try:
            wait_for(queries, on_progress=ProgressLog())
        except KeyboardInterrupt:
            console.print("stopping")
        added = {name: rows_added(spark, path, after_version=before[name]) for name, path in paths.items()}
        console.print(_summary(added, time.monotonic() - began, "bronze stream stopped"))
    except BronzeError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    except Exception as exc:
        # Spark surfaces Kafka and storage problems as Py4J/analysis errors; say which job failed and exit non-zero.
        logger.debug("bronze failed", exc_info=True)
        console.print(f"[red]error:[/] the bronze job failed: {exc.__class__.__name__}: {str(exc)[:500]}")
        raise typer.Exit(1) from exc
    finally:
        spark.stop()

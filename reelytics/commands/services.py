"""`reelytics up | down | status`: the embedded services."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.table import Table

from infra import services
from infra.process import ServiceError
from warehouse_models.settings import Settings, load_settings

logger = logging.getLogger(__name__)

console = Console()

_ONLY_HELP = "Only these services (repeatable): kafka, redis, spark, dagster, prometheus, api. Default: all."

APPS = ("api",)
"""Reelytics' own servers that `up` starts after the services they need (the API needs Redis)."""


def _names(only: list[str] | None) -> tuple[str, ...]:
    known = (*services.SERVICE_NAMES, *APPS)
    names = tuple(only or known)
    unknown = set(names) - set(known)
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(sorted(unknown))}; choose from {', '.join(known)}")
    return names


def up(only: list[str] = typer.Option(None, "--only", help=_ONLY_HELP)) -> None:
    """Start Kafka (KRaft), Redis and Dagster (webserver + daemon) on this machine and create the topics.

    A service that already answers at its configured address is left as it is. Settings come from
    REELYTICS_* environment variables (see `reelytics status` for the addresses in use).
    """
    from serving.api.service import API

    settings = load_settings()
    names = _names(only)
    try:
        services.up(settings, tuple(n for n in names if n not in APPS),
                    on_step=lambda name, what: console.print(f"[green]✓[/] {name:<8} {what}"))
        if "api" in names:
            console.print(f"[green]✓[/] {'api':<8} {API.start(settings)}")
    except ServiceError as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from exc
    if "dagster" in names:
        console.print(f"Dagster UI: http://{settings.dagster_webserver_host}:{settings.dagster_webserver_port}")
    if "api" in names:
        console.print(f"API: {API.url(settings, '/docs')} (keys: `reelytics api keys create --name NAME --scope "
                      "read`)")
    console.print("next: `reelytics status`, `reelytics simulate --minutes 10`, or `reelytics demo`")


def down(only: list[str] = typer.Option(None, "--only", help=_ONLY_HELP)) -> None:
    """Stop the services that `reelytics up` started (never one it did not start). Data is kept."""
    from serving.api.service import API
    from serving.collector.service import stop_collector
    from speed_layer.service import stop_speed

    settings = load_settings()
    if (not only or "api" in only) and API.stop(settings):
        console.print(f"{'api':<8} stopped")
    if not only and stop_speed(settings):
        console.print(f"{'speed':<8} stopped")
    if not only and stop_collector(settings):
        console.print(f"{'collector':<8} stopped")
    for name, stopped in services.down(settings, tuple(n for n in _names(only) if n not in APPS)).items():
        console.print(f"{name:<8} {'stopped' if stopped else 'was not running (started by Reelytics)'}")


def status() -> None:
    """Show each service, its address and its health; exits 1 when one is unhealthy."""
    settings = load_settings()
    table = Table(title="Reelytics services")
    for column in ("service", "address", "health", "pid", "detail"):
        table.add_column(column)
    from serving.api.service import API

    report = services.status(settings)
    api_ok = API.healthy(settings)
    report.append(services.ServiceStatus(
        "api", API.url(settings), api_ok, "answers /healthz, Redis reachable" if api_ok else
        "not answering: run `reelytics up --only api`", API.pid(settings)))
    for s in report:
        table.add_row(s.name, s.address, "[green]healthy[/]" if s.healthy else "[red]down[/]",
                      str(s.pid or "-"), s.detail)
    console.print(table)
    console.print(f"data dir: {settings.data_dir}   delta root: {settings.delta_root_uri}")
    speed = _speed_progress_table(settings)
    if speed is not None:
        console.print(speed)
    console.print(_pipeline_table(settings))
    if not all(s.healthy for s in report):
        raise typer.Exit(1)


PIPELINE_QUERIES = (
    ("speed lag (s)", "max by (query) (reelytics_speed_query_lag_seconds)"),
    ("Kafka lag (records)", "max by (query) (reelytics_speed_kafka_lag_records)"),
    ("Kafka lag per topic (records)", "max by (query, topic) (reelytics_speed_topic_lag_records)"),
    ("dead letters / min (collector)", 'sum(rate(reelytics_collector_events_total{status="rejected"}[5m])) * 60'),
    ("dead letters / min (speed)", "sum(rate(reelytics_speed_dead_letters_total[5m])) * 60"),
    ("batch watermark age (s)", "max(reelytics_batch_watermark_age_seconds)"),
    ("API p99 (ms)", "histogram_quantile(0.99, sum by (le) (rate(reelytics_api_request_seconds_bucket[5m]))) * 1000"),
    ("API requests / s", "sum(rate(reelytics_api_request_seconds_count[1m]))"),
    ("authorize denied / min", 'sum(rate(reelytics_api_authorize_total{allowed="false"}[5m])) * 60'),
)
"""What `reelytics status` asks Prometheus: the same numbers the dashboard and alerts would use."""


def _pipeline_table(settings: Settings) -> Table:
    """The pipeline's figures as Prometheus has them (a line saying so when it does not answer)."""
    from infra import prometheus

    table = Table(title=f"pipeline, from Prometheus at {prometheus.url(settings)}")
    for column in ("figure", "series", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for label, promql in PIPELINE_QUERIES:
        try:
            found = prometheus.query(settings, promql)
        except OSError as exc:
            table.add_row(label, "-", f"[red]Prometheus not answering ({exc.__class__.__name__})[/]")
            break
        if not found:
            table.add_row(label, "-", "no data yet")
        for labels, value in found:
            series = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"
            table.add_row(label, series, "NaN" if value != value else f"{value:,.2f}")
    return table


def _speed_progress_table(settings: Settings) -> Table | None:
    """The speed queries' newest progress as Redis holds it (None when Redis is down or nothing ran yet)."""
    from speed_layer.progress import progress_table
    from speed_layer.service import speed_pid

    try:
        return progress_table(settings.redis_client(), settings, pid=speed_pid(settings))
    except Exception:  # Redis down: the services table above already says so
        logger.debug("no speed progress", exc_info=True)
        return None

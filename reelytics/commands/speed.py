"""`reelytics speed`: run, start, stop and watch the speed layer (Kafka -> Spark -> Redis views)."""

from __future__ import annotations

import logging
import time

import typer
from rich.console import Console
from rich.table import Table

from warehouse_models.settings import load_settings

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="The speed layer: one Spark Structured Streaming query per real-time view, Kafka in, Redis out. "
         "`run` in the foreground, `start`/`stop` in the background, `show` what the views hold now.",
    no_args_is_help=True,
)


def _names(views: str | None) -> list[str] | None:
    return [n.strip() for n in views.split(",") if n.strip()] if views else None


_VIEWS_HELP = "Comma-separated views (default: all): engagement, ctr, trending, concurrency, resume, recent, qoe, " \
              "view_end, spikes, dead_letters."


@app.command("run")
def run(
    views: str | None = typer.Option(None, "--views", help=_VIEWS_HELP),
    available_now: bool = typer.Option(False, "--available-now", help="Process what the topics hold now, then stop "
                                       "(a catch-up run); without it the queries run until Ctrl-C."),
) -> None:
    """Run the speed layer in the foreground; Ctrl-C stops it (a restart continues from the checkpoints)."""
    from infra.process import ServiceError
    from infra.spark import build_spark_session
    from speed_layer.job import SpeedLayerError, run_speed, run_speed_available_now

    console = Console()
    settings = load_settings()
    console.print(f"speed layer: topics [cyan]{settings.kafka_topic_prefix}.*[/] on {settings.kafka_bootstrap_servers}"
                  f" -> Redis {settings.redis_url} (prefix {settings.redis_key_prefix}), checkpoints "
                  f"{settings.checkpoint_root_uri}/speed, a micro-batch every {settings.speed_trigger_seconds:g} s")
    try:
        spark = build_spark_session(settings, app_name="reelytics-speed")
    except ServiceError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    began = time.monotonic()
    try:
        if available_now:
            run_speed_available_now(spark, settings, names=_names(views))
            console.print(f"speed views up to date in {time.monotonic() - began:.1f} s; `reelytics speed show`")
        else:
            console.print("running; `reelytics speed show` in another terminal shows the views. Ctrl-C stops.")
            run_speed(spark, settings, names=_names(views))
    except KeyboardInterrupt:
        console.print("stopped; the next run continues from the checkpoints")
    except (SpeedLayerError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    except Exception as exc:
        logger.debug("speed layer failed", exc_info=True)
        console.print(f"[red]error:[/] the speed layer failed: {exc.__class__.__name__}: {str(exc)[:500]}")
        raise typer.Exit(1) from exc
    finally:
        spark.stop()


@app.command("start")
def start(views: str | None = typer.Option(None, "--views", help=_VIEWS_HELP)) -> None:
    """Start the speed layer as a background process (its log is under the data dir's run/ folder)."""
    from speed_layer.service import start_speed

    console = Console()
    console.print(f"speed layer: {start_speed(load_settings(), names=_names(views))}")


@app.command("stop")
def stop() -> None:
    """Stop the background speed layer (its queries continue from their checkpoints next time)."""
    from speed_layer.service import stop_speed

    Console().print("speed layer stopped" if stop_speed(load_settings()) else "speed layer was not running")


@app.command("show")
def show(
    user: str | None = typer.Option(None, "--user", help="Also show this user's engagement, resume positions and "
                                    "recent items."),
    account: str | None = typer.Option(None, "--account", help="Also show this account's streams."),
    top: int = typer.Option(5, "--top", min=1, help="Rows of each top-N view."),
) -> None:
    """Show every speed view as Redis holds it now, and each query's newest progress."""
    from serving.terminal import render_views
    from speed_layer.progress import progress_table
    from speed_layer.service import speed_pid

    console = Console()
    settings = load_settings()
    client = settings.redis_client()
    try:
        client.ping()
    except Exception as exc:
        console.print(f"[red]error:[/] Redis at {settings.redis_url} does not answer ({exc}); `reelytics up` starts it")
        raise typer.Exit(1) from exc
    for table in [*render_views(client, settings, user=user, account=account, top=top),
                  *filter(None, [progress_table(client, settings, pid=speed_pid(settings))])]:
        console.print(table if isinstance(table, Table) else str(table))

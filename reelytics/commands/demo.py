"""`reelytics demo`: start everything, feed a simulated hour, and show where to look."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from infra import kafka, services
from infra.process import ServiceError
from reelytics.commands.simulate import SinkKind, simulate
from warehouse_models.settings import load_settings

console = Console()


def demo(
    minutes: float = typer.Option(60.0, "--minutes", min=1.0, help="Simulated time to feed (default: an hour)."),
    users: int = typer.Option(2000, "--users", min=1, help="Simulated profiles."),
    seed: int = typer.Option(42, "--seed", help="Seed of the simulated world."),
) -> None:
    """Start Kafka, Redis and Dagster, feed a simulated hour into Kafka, and show what landed where.

    The services keep running afterwards: look around with `reelytics status`, the Dagster UI, or
    `redis-cli`; stop them with `reelytics down`.
    """
    settings = load_settings()
    console.rule("1. services")
    try:
        services.up(settings, on_step=lambda name, what: console.print(f"[green]✓[/] {name:<8} {what}"))
    except ServiceError as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from exc
    before = kafka.topic_record_counts(settings)

    console.rule("2. a simulated audience into Kafka")
    truth_path = settings.data_dir / "simulator" / "truth.json"
    simulate(seed=seed, hours=0.0, minutes=minutes, start=None, users=users, titles=400, channels=12,
             sessions_per_user_hour=0.5, spike=True, rate=0.0, sink=SinkKind.kafka, out=None, truth=truth_path)

    console.rule("3. what Kafka holds now")
    after = kafka.topic_record_counts(settings)
    truth = json.loads(truth_path.read_text())
    sent = {settings.topics.for_kind(kind).name: n for kind, n in truth["events_per_topic"].items()}
    table = Table()
    for column in ("topic", "records before", "records now", "added", "sent (ground truth)"):
        table.add_column(column, justify="right" if column != "topic" else "left")
    for name in settings.topics.names():
        added = after.get(name, 0) - before.get(name, 0)
        expected = sent.get(name, 0)
        mark = "[green]" if added == expected else "[red]"
        table.add_row(name, f"{before.get(name, 0):,}", f"{after.get(name, 0):,}", f"{mark}{added:,}[/]",
                      f"{expected:,}")
    console.print(table)

    console.rule("where to look")
    console.print(f"Dagster UI        http://{settings.dagster_webserver_host}:{settings.dagster_webserver_port}")
    console.print(f"Kafka             {settings.kafka_bootstrap_servers}  (topics {settings.kafka_topic_prefix}.*)")
    console.print(f"Redis             {settings.redis_url}")
    console.print(f"ground truth      {truth_path}")
    console.print(f"service logs      {settings.run_dir}")
    console.print("services          `reelytics status`; stop with `reelytics down`")

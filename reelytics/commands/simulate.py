"""`reelytics simulate`: feed a deterministic simulated world into Kafka (or a file) and record its truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator import SimulationConfig, TruthAccumulator, spike_plan, write_truth
from simulator import simulate as simulate_events
from simulator.sinks import SinkError, write_file, write_kafka
from warehouse_models.events import parse_timestamp
from warehouse_models.settings import load_settings

logger = logging.getLogger(__name__)


class SinkKind(StrEnum):
    """Where the simulated events go."""

    kafka = "kafka"
    file = "file"


def _start_of(start: str | None, duration: timedelta) -> datetime:
    if start is None:
        end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        return end - duration
    try:
        return parse_timestamp(start)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc} (got {start!r})", param_hint="--start") from exc


def simulate(
    *,
    seed: int = typer.Option(42, "--seed", help="Seed of the simulated world and its behaviour. The same seed, "
                             "start and options produce the byte-identical event stream; change it for another world."),
    hours: float = typer.Option(0.0, "--hours", min=0.0, help="Simulated time to generate, in hours (added to "
                                "--minutes; one hour when neither is given)."),
    minutes: float = typer.Option(0.0, "--minutes", min=0.0, help="Simulated time to generate, in minutes (added "
                                  "to --hours)."),
    start: str | None = typer.Option(None, "--start", help="Event time of the first instant, ISO-8601 with a time "
                                     "zone (e.g. 2026-01-31T20:00:00Z). Default: the period that ends now (floored to "
                                     "the minute), so the events are recent and the speed layer counts them."),
    users: int = typer.Option(2000, "--users", min=1, help="Profiles to simulate (grouped into accounts of 1-5). "
                              "About 100 events per profile per simulated hour."),
    titles: int = typer.Option(400, "--titles", min=9, help="VOD titles in the catalog."),
    channels: int = typer.Option(12, "--channels", min=1, help="Live channels in the catalog."),
    sessions_per_user_hour: float = typer.Option(0.5, "--sessions-per-user-hour", min=0.0, help="Mean viewing "
                                                 "sessions a profile starts per simulated hour."),
    spike: bool = typer.Option(True, "--spike/--no-spike", help="Include a live event: many profiles join one "
                               "live channel within a few minutes (at 60 % of the range)."),
    rate: float = typer.Option(0.0, "--rate", min=0.0, help="Send at most this many events per second of wall "
                               "clock (0 = as fast as possible). Event times are not changed by pacing."),
    sink: SinkKind = typer.Option(SinkKind.kafka, "--sink", help="kafka: produce to the topics of the settings "
                                  "(start them with `reelytics up`); file: write NDJSON, one event per line."),
    out: Path | None = typer.Option(None, "--out", help="NDJSON file for --sink file. Default: "
                                    "<data dir>/simulator/events.ndjson."),
    truth: Path | None = typer.Option(None, "--truth", help="Where to write the ground truth (JSON: watch "
                                      "seconds, views, CTR, stream-limit violations, resume positions, the spike) "
                                      "to compare the views with. Default: <data dir>/simulator/truth.json."),
) -> None:
    """Generate a simulated world's events, send them, and write the ground truth of what was sent."""
    console = Console()
    settings = load_settings()
    duration = timedelta(hours=hours, minutes=minutes) or timedelta(hours=1)
    if duration < timedelta(minutes=1):
        raise typer.BadParameter("the simulated time must be at least one minute", param_hint="--minutes")
    config = SimulationConfig(start=_start_of(start, duration), duration=duration, seed=seed, users=users,
                              titles=titles, channels=channels, sessions_per_user_hour=sessions_per_user_hour,
                              spike=spike)
    truth_path = truth or settings.data_dir / "simulator" / "truth.json"
    out_path = out or settings.data_dir / "simulator" / "events.ndjson"
    destination = settings.kafka_bootstrap_servers if sink is SinkKind.kafka else str(out_path)
    console.print(f"Simulating [bold]{duration}[/] from {config.start.isoformat()} (seed {seed}, {users} profiles) "
                  f"into {sink.value} [cyan]{destination}[/]")

    accumulator = TruthAccumulator()
    total_s = duration.total_seconds()
    began = time.monotonic()
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}% of simulated time"), TextColumn("{task.fields[events]:,} events"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("simulating", total=total_s, events=0)

        def observed(events: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
            for event in events:
                accumulator.add(event)
                if accumulator.events_total % 2000 == 0:
                    done = ((accumulator.last_ms or config.start_ms) - config.start_ms) / 1000
                    progress.update(task, completed=done, events=accumulator.events_total)
                yield event

        stream = observed(simulate_events(config))
        try:
            if sink is SinkKind.kafka:
                counts = write_kafka(stream, settings, rate=rate)
            else:
                counts = write_file(stream, out_path, topics=settings.topics, rate=rate)
        except SinkError as exc:
            progress.stop()
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from exc
        progress.update(task, completed=total_s, events=accumulator.events_total)
    elapsed = time.monotonic() - began

    result = accumulator.result(spike=spike_plan(config), end=config.end)
    write_truth(result, truth_path)

    table = Table(title=f"Sent {sum(counts.values()):,} events in {elapsed:.1f} s "
                        f"({sum(counts.values()) / max(elapsed, 1e-9):,.0f}/s)")
    table.add_column("topic")
    table.add_column("events", justify="right")
    for name, count in sorted(counts.items()):
        table.add_row(name, f"{count:,}")
    console.print(table)
    sessions = result["sessions"]
    console.print(f"sessions: {sessions['total']:,} ({sessions['with_first_frame']:,} started), watch time "
                  f"{result['watch_seconds_total'] / 3600:,.1f} h, accounts over their stream limit: "
                  f"{len(result['concurrency_violations'])}")
    if result["spike"] is not None:
        s = result["spike"]
        console.print(f"live event: {s['channel_id']} from {s['start']} to {s['end']}, "
                      f"{s['sessions_in_window']} sessions joined (vs {s['sessions_in_previous_window']} just before)")
    if sink is SinkKind.file:
        console.print(f"events: [cyan]{out_path}[/]")
    console.print(f"ground truth: [cyan]{truth_path}[/]")
    logger.debug("simulated %s in %.1f s", config.run_tag, elapsed)

"""`reelytics demo`: start everything, feed a simulated hour, and show where to look."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from infra import kafka, prometheus, services
from infra.process import ServiceError
from reelytics.commands.dlq import DlqSource, dlq
from reelytics.commands.simulate import SinkKind, simulate
from serving.api.service import API
from warehouse_models.settings import Settings, load_settings

MALFORMED_EVENTS: tuple[object, ...] = (
    {"event_id": "demo-bad-1", "schema_version": 1, "event_type": "teleport",
     "event_timestamp": "2026-01-01T00:00:00Z"},
    {"event_id": "demo-bad-2", "schema_version": 9, "event_type": "heartbeat"},
    {"event_id": "demo-bad-3", "schema_version": 1, "event_type": "heartbeat", "account_id": "acc-x",
     "user_id": "usr-x", "session_id": "ses-x", "content_id": "vod-x", "device_type": "tv",
     "player_state": "playing", "position_seconds": -5, "event_timestamp": "2026-01-01T00:00:00Z"},
    ["not", "an", "object"],
)
"""A few events a buggy player might send: the demo shows them refused with their reasons."""


def _through_collector(settings: Settings, *, minutes: float, seed: int) -> None:
    """Start the collector, post a slice of simulated viewing and the malformed events, show the answers."""
    from datetime import datetime, timedelta, timezone

    import httpx

    from serving.collector.service import collector_url, start_collector
    from simulator import SimulationConfig
    from simulator import simulate as simulate_events
    from simulator.sinks import write_collector

    console.print(f"[green]✓[/] collector {start_collector(settings)}")
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    config = SimulationConfig(start=end - timedelta(minutes=minutes), duration=timedelta(minutes=minutes),
                              users=200, seed=seed + 1, spike=False)
    counts = write_collector(simulate_events(config), settings)
    console.print(f"players posted {minutes:g} simulated minutes of 200 profiles: "
                  f"{counts.get('accepted', 0):,} accepted, {counts.get('rejected', 0):,} rejected")
    body = "\n".join(json.dumps(e) for e in MALFORMED_EVENTS)
    answer = httpx.post(collector_url(settings, "/v1/events"), content=body,
                        headers={"Content-Type": "application/x-ndjson"}, timeout=30).json()
    console.print(f"a buggy player posted {len(MALFORMED_EVENTS)} malformed events: "
                  f"{answer['rejected']} rejected, each to the dead-letter topic with its reason:")
    for result in answer["results"]:
        console.print(f"  {result.get('event_id') or '-':<12} {result['reason']}")


def _bronze(settings: Settings) -> None:
    """Land every topic in the bronze Delta tables (available-now) and say how many rows each got."""
    from batch_layer.bronze.job import run_bronze_available_now
    from infra.spark import build_spark_session

    console.print("starting Spark and landing the topics in bronze (the first run of each query takes a while)")
    spark = build_spark_session(settings, app_name="reelytics-demo-bronze", ui=False)
    try:
        added = run_bronze_available_now(settings, spark)
    finally:
        spark.stop()
    for table, rows in added.items():
        console.print(f"  {table:<22} +{rows:,} rows")
    console.print(f"Delta root: {settings.delta_root_uri}")

def _start_speed(settings: Settings) -> None:
    """Start the speed layer in the background now, so its queries warm up while the players post.

    A speed layer that never ran starts from what comes next (the players' events through the collector), not
    from the bulk-loaded hour: the views then show live traffic within seconds of it arriving. Once started,
    the queries continue from their checkpoints.
    """
    import time

    from speed_layer.job import plan_queries, query_name, views
    from speed_layer.progress import read_progress
    from speed_layer.service import start_speed

    live = settings.model_copy(update={"speed_starting_offsets": "latest"})
    console.print(f"[green]✓[/] speed layer {start_speed(live)}")
    wanted = {query_name(settings, plan) for plan in plan_queries(views())}
    client = settings.redis_client()
    deadline = time.monotonic() + 300
    with console.status("waiting for every speed query's first micro-batch (they compile their plans)") as status:
        while time.monotonic() < deadline:
            ready = wanted & {row["name"] for row in read_progress(client, settings.keys)}
            status.update(f"speed queries ready: {len(ready)}/{len(wanted)}")
            if ready == wanted:
                break
            time.sleep(2)
    console.print(f"[green]✓[/] speed layer running: {len(wanted)} queries")


def _wait_for_speed(settings: Settings, *, wait_s: float) -> None:
    """Wait until every speed query has read everything its topics hold (or ``wait_s`` passed)."""
    import time

    from infra.kafka import end_offsets
    from speed_layer.job import plan_queries, query_name, views
    from speed_layer.progress import read_progress

    client = settings.redis_client()
    wanted = {query_name(settings, plan): [settings.topics.for_kind(k).name for k in plan.topics]
              for plan in plan_queries(views())}
    deadline = time.monotonic() + wait_s
    with console.status("waiting for the speed layer to catch up with Kafka") as status:
        while time.monotonic() < deadline:
            ends = end_offsets(settings, settings.topics.names())
            read = {r["name"]: int(r.get("end_offsets_total") or 0) for r in read_progress(client, settings.keys)}
            left = sum(max(0, sum(ends[t] for t in topics) - read.get(name, 0)) for name, topics in wanted.items())
            status.update(f"waiting for the speed layer: {sum(1 for n in wanted if n in read)}/{len(wanted)} "
                          f"queries reporting, {left:,} records still to read")
            if all(name in read for name in wanted) and left == 0:
                return
            time.sleep(2)
    console.print(f"[yellow]the speed layer has not caught up after {wait_s:.0f} s; showing what it has "
                  "so far (its log is in the run dir)[/]")


def _show_speed(settings: Settings, *, rounds: int, seed: int, wait_s: float) -> None:
    """Show the speed views; between rounds the players post one more live minute through the collector."""
    from datetime import datetime, timedelta, timezone

    from serving.terminal import render_views
    from simulator import SimulationConfig
    from simulator import simulate as simulate_events
    from simulator.sinks import write_collector
    from speed_layer.progress import progress_table
    from speed_layer.service import speed_pid

    client = settings.redis_client()
    user = None
    for round_ in range(rounds):
        if round_:
            start = datetime.now(timezone.utc) - timedelta(minutes=1)
            config = SimulationConfig(start=start, duration=timedelta(minutes=1), users=200, seed=seed + 10 + round_,
                                      spike=False)
            counts = write_collector(simulate_events(config), settings)
            console.rule(f"the speed views again, after players posted one more minute "
                         f"({counts.get('accepted', 0):,} events)")
        _wait_for_speed(settings, wait_s=wait_s)
        user = user or _a_viewer(settings)
        for table in [*render_views(client, settings, user=user, top=5),
                      *filter(None, [progress_table(client, settings, pid=speed_pid(settings))])]:
            console.print(table)


def _a_viewer(settings: Settings) -> str | None:
    """A user with recent items in Redis (for the per-user part of the speed views)."""
    client = settings.redis_client()
    pattern = settings.keys.recent_items("*")
    for key in client.scan_iter(match=pattern, count=1000):
        text = key.decode() if isinstance(key, bytes) else key
        return text[len(pattern) - 1:]
    return None


console = Console()

DEMO_KEY_NAME = "demo"
"""The demo's API key (all scopes); each demo run replaces it, since a key is shown only once."""


def _first_id(client: Any, pattern: str, prefix: str) -> str | None:
    for key in client.scan_iter(match=pattern, count=1000):
        return str(key.decode() if isinstance(key, bytes) else key)[len(prefix):]
    return None


def _serving_examples(settings: Settings) -> None:
    """A fresh demo key, the API's, dashboard's and docs' URLs, and one curl per route with ids from the views."""
    from serving.api.auth import create_key, revoke_key
    from serving.views.speed import read_ctr_rates
    from warehouse_models.batch_versions import current_version
    from warehouse_models.metrics.trending import read_trending

    client, keys = settings.redis_client(), settings.keys
    revoke_key(client, keys, DEMO_KEY_NAME)
    key = create_key(client, keys, name=DEMO_KEY_NAME, scopes=["read", "playback", "admin"])
    recent = keys.recent_items("")
    user = _first_id(client, recent + "*", recent) or "usr-00001"
    trending = read_trending(client, keys, "vod", 1)
    title = trending[0][0] if trending else "vod-00001"
    rates = read_ctr_rates(client, keys, limit=1)
    rail, button = (rates[0]["rail_id"], rates[0]["button_id"]) if rates else ("top_picks", "tile")
    streams = keys.account_concurrency("")
    account = _first_id(client, streams + "*", streams) or "acc-00001"
    base = API.url(settings)
    # Whole lines (soft_wrap): a key or URL cut by the terminal's width could not be copied.
    console.print(f"serving API       {base}/docs  (OpenAPI {base}/openapi.json; docs/serving.md)", soft_wrap=True)
    console.print(f"live dashboard    {base}/dashboard#key={key}", soft_wrap=True, highlight=False)
    console.print(f"demo API key      {key}  (all scopes; `reelytics api keys create` makes your own)", soft_wrap=True,
                  highlight=False)
    header = f"-H 'X-API-Key: {key}'"
    published = current_version(client, keys) is not None
    model = client.exists(keys.model_pointer()) > 0
    for path in ("/v1/freshness", f"/v1/users/{user}/engagement?days=7", f"/v1/users/{user}/resume",
                 f"/v1/users/{user}/recent", "/v1/trending?kind=vod", "/v1/trending?kind=vod&country=US",
                 "/v1/trending?kind=live",
                 f"/v1/content/{title}/stats", f"/v1/ctr/{rail}/{button}", f"/v1/qoe/{title}?device_type=tv&country=US",
                 "/v1/alerts", f"/v1/accounts/{account}/streams", "/v1/playback/decisions", "/v1/dashboard",
                 f"/v1/users/{user}/recommendations", f"/v1/content/{title}/similar"):
        batch_only = path.endswith("/stats") and not published
        note = "  # 404 until the batch layer publishes its views (Dagster's publish_hourly)" if batch_only else ""
        if ("/recommendations" in path or path.endswith("/similar")) and not model:
            note = ("  # 404 until a recommendation model is published (Dagster's models_daily once gold holds a few "
                    "days, or `reelytics models train`)")
        console.print(f"  curl -s {header} '{base}{path}'{note}", soft_wrap=True, highlight=False)
    body = json.dumps({"account_id": account, "session_id": "demo-session", "device_type": "tv"})
    console.print(f"  curl -s {header} -H 'content-type: application/json' -d '{body}' "
                  f"'{base}/v1/playback/authorize'", soft_wrap=True, highlight=False)


def demo(
    minutes: float = typer.Option(60.0, "--minutes", min=1.0, help="Simulated time to feed (default: an hour)."),
    users: int = typer.Option(2000, "--users", min=1, help="Simulated profiles."),
    seed: int = typer.Option(42, "--seed", help="Seed of the simulated world."),
) -> None:
    """Start everything, feed a simulated hour into Kafka, post players' events (and a few malformed ones) to
    the collector, show the speed layer's real-time views updating in Redis, land the topics in bronze Delta,
    and show the dead letters with their reasons.

    The services keep running afterwards: look around with `reelytics status`, the Dagster UI, or
    `redis-cli`; stop them with `reelytics down`.
    """
    settings = load_settings()
    console.rule("1. services")
    try:
        services.up(settings, on_step=lambda name, what: console.print(f"[green]✓[/] {name:<8} {what}"))
        console.print(f"[green]✓[/] {'api':<8} {API.start(settings)}")
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

    console.rule("4. players through the collector, watched by the speed layer")
    _start_speed(settings)
    _through_collector(settings, minutes=min(minutes, 5.0), seed=seed)

    console.rule("5. the speed layer: real-time views in Redis")
    _show_speed(settings, rounds=2, seed=seed, wait_s=600.0)

    console.rule("6. Kafka -> bronze Delta")
    _bronze(settings)

    console.rule("7. dead letters (from the dead_letter table)")
    dlq(source=DlqSource.table, limit=5, scan=100_000, width=70)

    console.rule("where to look")
    _serving_examples(settings)
    console.print(f"Dagster UI        http://{settings.dagster_webserver_host}:{settings.dagster_webserver_port}")
    console.print(f"Prometheus        {prometheus.url(settings)}  (`reelytics status` reads the pipeline's figures)")
    console.print(f"Kafka             {settings.kafka_bootstrap_servers}  (topics {settings.kafka_topic_prefix}.*)")
    console.print(f"Redis             {settings.redis_url}")
    console.print(f"ground truth      {truth_path}")
    console.print(f"service logs      {settings.run_dir}")
    console.print(f"collector         http://{settings.collector_host}:{settings.collector_port}/v1/events")
    console.print("speed views       `reelytics speed show [--user U] [--account A]`; progress in `reelytics status`")
    console.print("services          `reelytics status`; stop with `reelytics down`")

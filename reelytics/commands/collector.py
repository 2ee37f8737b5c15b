"""`reelytics collector`: run the HTTP collector that validates events and publishes them to Kafka."""

from __future__ import annotations

import typer
from rich.console import Console

from serving.collector.service import collector_url, serve
from warehouse_models.settings import load_settings

console = Console()


def collector(
    host: str | None = typer.Option(None, "--host", help="Bind address. Default: REELYTICS_COLLECTOR_HOST "
                                    "(127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port. Default: "
                                    "REELYTICS_COLLECTOR_PORT (8081)."),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes (each with its own Kafka "
                                "producer)."),
) -> None:
    """Run the HTTP collector in the foreground until Ctrl-C.

    POST /v1/events takes a JSON array or NDJSON (gzip allowed), POST /v1/heartbeat one heartbeat, and
    GET /healthz says whether Kafka answers. Valid events go to their Kafka topic, invalid ones to the
    dead-letter topic with the reason; a request is answered once Kafka acknowledged its events (503 with
    Retry-After for those it did not).
    """
    settings = load_settings()
    overrides = {k: v for k, v in {"collector_host": host, "collector_port": port}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    console.print(f"collector listening on [cyan]{collector_url(settings)}[/] ({workers} worker"
                  f"{'s' if workers > 1 else ''}): POST /v1/events, POST /v1/heartbeat, GET /healthz; "
                  f"Kafka at {settings.kafka_bootstrap_servers}, topics {settings.kafka_topic_prefix}.*")
    serve(settings, workers=workers, log_level=settings.log_level)

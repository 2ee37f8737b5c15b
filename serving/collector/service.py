"""Run the collector: in this process (uvicorn) or as a background process remembered by a PID file."""

from __future__ import annotations

from serving.http_service import HttpService
from warehouse_models.settings import Settings

COLLECTOR = HttpService(
    name="collector", module="serving.collector", app_factory="serving.collector.app:app_from_environment",
    address=lambda s: (s.collector_host, s.collector_port), port_setting="REELYTICS_COLLECTOR_PORT")


def collector_url(settings: Settings, path: str = "") -> str:
    """Base URL of the collector (plus ``path``)."""
    return COLLECTOR.url(settings, path)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the collector in this process with uvicorn until interrupted."""
    COLLECTOR.serve(settings, host=host, port=port, workers=workers, log_level=log_level)


def collector_healthy(settings: Settings) -> bool:
    """True when the collector answers /healthz with 200 (it is up, Kafka answers, the topics exist)."""
    return COLLECTOR.healthy(settings)


def start_collector(settings: Settings, *, workers: int = 1) -> str:
    """Start the collector in the background unless one already answers; return what was done."""
    done = COLLECTOR.start(settings, workers=workers)
    if done == "already running":
        return done
    return f"{done}, {'Kafka reachable' if collector_healthy(settings) else 'Kafka NOT reachable yet'}"


def stop_collector(settings: Settings) -> bool:
    """Stop the background collector (it flushes its producer first); True if one was stopped."""
    return COLLECTOR.stop(settings)


def managed_pid(settings: Settings) -> int | None:
    return COLLECTOR.pid(settings)

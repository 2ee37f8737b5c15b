"""Run the collector: in this process (uvicorn) or as a background process remembered by a PID file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from infra.process import ManagedProcess, ServiceError, port_in_use, port_owner, wait_until
from warehouse_models.settings import Settings, settings_environment

logger = logging.getLogger(__name__)

APP_FACTORY = "serving.collector.app:app_from_environment"
START_TIMEOUT_S = 30.0
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def collector_url(settings: Settings, path: str = "") -> str:
    """Base URL of the collector (plus ``path``)."""
    host = settings.collector_host
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind is reached over loopback from this machine
        host = "127.0.0.1"
    return f"http://{host}:{settings.collector_port}{path}"


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the collector in this process with uvicorn (uvloop, httptools) until interrupted.

    Each worker builds its app from the environment, so ``settings`` are exported there first.
    """
    import uvicorn

    os.environ.update(settings_environment(settings))
    uvicorn.run(
        APP_FACTORY, factory=True,
        host=host or settings.collector_host, port=port or settings.collector_port, workers=workers,
        loop="uvloop", http="httptools", log_level=log_level.lower(),
        # One log line per request would cost more than handling a heartbeat.
        access_log=False,
        timeout_graceful_shutdown=15,
    )


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("collector", settings.run_dir)


def _answers(settings: Settings) -> bool:
    """True when an HTTP server answers /healthz at the collector's address (healthy or not)."""
    import httpx

    try:
        response = httpx.get(collector_url(settings, "/healthz"), timeout=5.0)
    except httpx.HTTPError:
        return False
    return response.status_code in (200, 503) and "status" in response.text


def collector_healthy(settings: Settings) -> bool:
    """True when the collector answers /healthz with 200 (it is up, Kafka answers, the topics exist)."""
    import httpx

    try:
        return httpx.get(collector_url(settings, "/healthz"), timeout=5.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_collector(settings: Settings, *, workers: int = 1) -> str:
    """Start the collector in the background unless one already answers; return what was done."""
    proc = _process(settings)
    if _answers(settings):
        return "already running"
    host, port = settings.collector_host, settings.collector_port
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if port_in_use(probe_host, port) and not proc.running():
        raise ServiceError(f"Port {port} on {host} is taken by {port_owner(port)}, so the collector cannot listen "
                           "there. Stop that process or choose another port with REELYTICS_COLLECTOR_PORT.")
    if not proc.running():
        proc.start([sys.executable, "-m", "serving.collector", "--workers", str(workers),
                    "--log-level", settings.log_level],
                   env=settings_environment(settings), cwd=_PROJECT_ROOT)
    wait_until(lambda: _answers(settings), timeout=START_TIMEOUT_S, what=f"the collector on {host}:{port}",
               alive=proc.running, log_path=proc.log_path)
    state = "Kafka reachable" if collector_healthy(settings) else "Kafka NOT reachable yet"
    return f"started (pid {proc.pid()}) at {collector_url(settings)}, {state}"


def stop_collector(settings: Settings) -> bool:
    """Stop the background collector (it flushes its producer first); True if one was stopped."""
    return _process(settings).stop(timeout=30)


def managed_pid(settings: Settings) -> int | None:
    return _process(settings).pid()

"""Run one of the serving layer's HTTP apps (the collector, the API): in this process with uvicorn, or as a
background process remembered by a PID file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.process import ManagedProcess, ServiceError, port_in_use, port_owner, wait_until
from warehouse_models.settings import Settings, settings_environment

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
_PROJECT_ROOT = Path(__file__).resolve().parents[1]
_WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class HttpService:
    """One HTTP app: how to serve it, where it listens, how to tell it answers."""

    name: str
    module: str
    """``python -m <module>`` serves it in the background."""
    app_factory: str
    address: Callable[[Settings], tuple[str, int]]
    port_setting: str
    """The environment variable that moves it to another port (named in errors)."""
    answers_path: str = "/healthz"

    def url(self, settings: Settings, path: str = "") -> str:
        host, port = self.address(settings)
        if host in _WILDCARDS:  # a wildcard bind is reached over loopback from this machine
            host = "127.0.0.1"
        return f"http://{host}:{port}{path}"

    def serve(self, settings: Settings, *, host: str | None = None, port: int | None = None, workers: int = 1,
              log_level: str = "info") -> None:
        """Serve in this process with uvicorn (uvloop, httptools with a deadline per request read:
        :mod:`serving.http_protocol`) until interrupted; each worker builds its app from the environment, so
        ``settings`` are exported there first."""
        import uvicorn

        from serving import http_protocol

        os.environ.update(settings_environment(settings))
        bind_host, bind_port = self.address(settings)
        uvicorn.run(
            self.app_factory, factory=True, host=host or bind_host, port=port or bind_port, workers=workers,
            loop="uvloop", http=http_protocol.PROTOCOL, log_level=log_level.lower(),
            # One log line per request would cost more than answering most requests.
            access_log=False,
            timeout_graceful_shutdown=15,
        )

    def _process(self, settings: Settings) -> ManagedProcess:
        return ManagedProcess(self.name, settings.run_dir)

    def answers(self, settings: Settings) -> bool:
        """True when an HTTP server answers the health path at the address (healthy or not)."""
        import httpx

        try:
            response = httpx.get(self.url(settings, self.answers_path), timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code in (200, 503) and "status" in response.text

    def healthy(self, settings: Settings) -> bool:
        """True when the health path answers 200."""
        import httpx

        try:
            return httpx.get(self.url(settings, self.answers_path), timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, settings: Settings, *, workers: int = 1) -> str:
        """Start in the background unless one already answers; return what was done."""
        proc = self._process(settings)
        if self.answers(settings):
            return "already running"
        host, port = self.address(settings)
        probe_host = "127.0.0.1" if host in _WILDCARDS else host
        if port_in_use(probe_host, port) and not proc.running():
            raise ServiceError(f"Port {port} on {host} is taken by {port_owner(port)}, so the {self.name} cannot "
                               f"listen there. Stop that process or choose another port with {self.port_setting}.")
        if not proc.running():
            proc.start([sys.executable, "-m", self.module, "--workers", str(workers), "--log-level",
                        settings.log_level], env=settings_environment(settings), cwd=_PROJECT_ROOT)
        wait_until(lambda: self.answers(settings), timeout=START_TIMEOUT_S, what=f"the {self.name} on {host}:{port}",
                   alive=proc.running, log_path=proc.log_path)
        return f"started (pid {proc.pid()}) at {self.url(settings)}"

    def stop(self, settings: Settings) -> bool:
        """Stop the background process; True if one was stopped."""
        return self._process(settings).stop(timeout=30)

    def pid(self, settings: Settings) -> int | None:
        return self._process(settings).pid()


def main(service: HttpService, description: str | None) -> None:
    """``python -m <module>``: parse the few options, configure logging once, and serve."""
    import argparse

    from warehouse_models.settings import load_settings

    parser = argparse.ArgumentParser(prog=f"python -m {service.module}", description=description)
    parser.add_argument("--host", default=None, help="bind address (default: from the settings)")
    parser.add_argument("--port", type=int, default=None, help=f"port (default: {service.port_setting})")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service.serve(load_settings(), host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)

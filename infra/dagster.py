"""The local Dagster instance: DAGSTER_HOME under the data dir, the webserver and the daemon.

Both processes load `orchestration.definitions`; the daemon runs schedules, sensors and the run queue.
"""

from __future__ import annotations

import logging
import sys
import urllib.request
from pathlib import Path

from infra.process import ManagedProcess, ServiceError, port_in_use, port_owner, wait_until
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
DEFINITIONS_MODULE = "orchestration.definitions"

_INSTANCE_YAML = """\
# Local Dagster instance of Reelytics (written by infra/dagster.py).
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      # Spark runs share two cores: one at a time.
      - key: reelytics/spark
        limit: 1
"""


def _webserver(settings: Settings) -> ManagedProcess:
    return ManagedProcess("dagster-webserver", settings.run_dir)


def _daemon(settings: Settings) -> ManagedProcess:
    return ManagedProcess("dagster-daemon", settings.run_dir)


def prepare_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with its dagster.yaml; return it."""
    home = settings.dagster_home_dir
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(_INSTANCE_YAML)
    return home


def url(settings: Settings) -> str:
    return f"http://{settings.dagster_webserver_host}:{settings.dagster_webserver_port}"


def healthy(settings: Settings) -> bool:
    """True when the webserver answers /server_info."""
    if not port_in_use(settings.dagster_webserver_host, settings.dagster_webserver_port):
        return False
    try:
        with urllib.request.urlopen(url(settings) + "/server_info", timeout=3) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def _env(settings: Settings) -> dict[str, str]:
    return {"DAGSTER_HOME": str(prepare_home(settings))}


def _python_module(module: str) -> list[str]:
    """Run a Dagster entry point with this interpreter, so it sees the same packages and sources."""
    return [sys.executable, "-m", module]


def start(settings: Settings) -> str:
    """Start the webserver and the daemon (each unless already running)."""
    web, daemon = _webserver(settings), _daemon(settings)
    done = []
    cwd = Path(__file__).resolve().parent.parent
    if not daemon.running():
        daemon.start([*_python_module("dagster._daemon"), "run", "-m", DEFINITIONS_MODULE],
                     env=_env(settings), cwd=cwd)
        done.append(f"daemon pid {daemon.pid()}")
    if healthy(settings):
        return "already running" + (f" ({', '.join(done)})" if done else "")
    host, port = settings.dagster_webserver_host, settings.dagster_webserver_port
    if port_in_use(host, port) and not web.running():
        raise ServiceError(f"Port {port} on {host} is taken by {port_owner(port)}; stop it or set "
                           "REELYTICS_DAGSTER_WEBSERVER_PORT.")
    if not web.running():
        web.start([*_python_module("dagster_webserver"), "-h", host, "-p", str(port), "-m", DEFINITIONS_MODULE],
                  env=_env(settings), cwd=cwd)
    wait_until(lambda: healthy(settings), timeout=START_TIMEOUT_S, what=f"Dagster webserver on {host}:{port}",
               alive=web.running, log_path=web.log_path, interval=1.0)
    done.append(f"webserver pid {web.pid()}")
    return "started (" + ", ".join(done) + ")"


def daemon_running(settings: Settings) -> bool:
    return _daemon(settings).running()


def stop(settings: Settings) -> bool:
    stopped_web = _webserver(settings).stop(timeout=20)
    stopped_daemon = _daemon(settings).stop(timeout=20)
    return stopped_web or stopped_daemon


def managed_pid(settings: Settings) -> int | None:
    return _webserver(settings).pid()

"""The embedded Prometheus server: Debian's prometheus, scraping the API, the collector and the speed layer.

Its configuration is written at start into ``<data dir>/run/prometheus.yml`` from the settings (each target's
address is a setting), its data lives in ``<data dir>/prometheus`` for ``PROMETHEUS_RETENTION``.
"""

from __future__ import annotations

import json
import logging
import shutil
import urllib.parse
import urllib.request
from typing import Any

from infra.process import ManagedProcess, ServiceError, is_loopback, port_in_use, port_owner, wait_until
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
SCRAPE_INTERVAL_S = 5
PROMETHEUS_RETENTION = "7d"


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("prometheus", settings.run_dir)


def url(settings: Settings, path: str = "") -> str:
    return f"http://{settings.prometheus_host}:{settings.prometheus_port}{path}"


def address(settings: Settings) -> str:
    return url(settings)


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def scrape_targets(settings: Settings) -> dict[str, str]:
    """Job name -> ``host:port`` of every /metrics Reelytics serves."""
    return {
        "api": f"{_loopback(settings.serving_host)}:{settings.serving_port}",
        "collector": f"{_loopback(settings.collector_host)}:{settings.collector_port}",
        "speed": f"{_loopback(settings.speed_metrics_host)}:{settings.speed_metrics_port}",
    }


def config(settings: Settings) -> str:
    """prometheus.yml (YAML is a superset of JSON: the jobs are written as JSON)."""
    jobs = [{"job_name": name, "static_configs": [{"targets": [target]}]}
            for name, target in scrape_targets(settings).items()]
    document = {"global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
                "scrape_configs": jobs}
    return json.dumps(document, indent=2) + "\n"


def healthy(settings: Settings) -> bool:
    """True when Prometheus answers /-/ready."""
    if not port_in_use(settings.prometheus_host, settings.prometheus_port):
        return False
    try:
        with urllib.request.urlopen(url(settings, "/-/ready"), timeout=3) as answer:  # noqa: S310 (a setting)
            return bool(answer.status == 200)
    except OSError:
        return False


def start(settings: Settings) -> str:
    """Start Debian's prometheus with a generated config unless one already answers."""
    if healthy(settings):
        return "already running"
    host, port = settings.prometheus_host, settings.prometheus_port
    if not is_loopback(host):
        raise ServiceError(f"Prometheus at {url(settings)} does not answer and is not on this machine; check "
                           "REELYTICS_PROMETHEUS_HOST.")
    proc = _process(settings)
    if port_in_use(host, port) and not proc.running():
        raise ServiceError(f"Port {port} on {host} is taken by {port_owner(port)}. Stop it (e.g. `service "
                           "prometheus stop`) or set REELYTICS_PROMETHEUS_PORT to another port.")
    server = shutil.which("prometheus")
    if server is None:
        raise ServiceError("prometheus is not installed: run `bash infra/install.sh` (or apt-get install -y "
                           "prometheus).")
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    config_path = settings.run_dir / "prometheus.yml"
    config_path.write_text(config(settings))
    data = settings.data_dir / "prometheus"
    data.mkdir(parents=True, exist_ok=True)
    if not proc.running():
        proc.start([server, f"--config.file={config_path}", f"--storage.tsdb.path={data}",
                    f"--storage.tsdb.retention.time={PROMETHEUS_RETENTION}",
                    f"--web.listen-address={host}:{port}"])
    wait_until(lambda: healthy(settings), timeout=START_TIMEOUT_S, what=f"Prometheus on {host}:{port}",
               alive=proc.running, log_path=proc.log_path)
    return f"started (pid {proc.pid()}), scraping {', '.join(scrape_targets(settings))} every {SCRAPE_INTERVAL_S} s"


def stop(settings: Settings) -> bool:
    return _process(settings).stop(timeout=20)


def managed_pid(settings: Settings) -> int | None:
    return _process(settings).pid()


def query(settings: Settings, promql: str, *, timeout: float = 3.0) -> list[tuple[dict[str, str], float]]:
    """An instant PromQL query: (labels, value) per series; raises OSError when Prometheus does not answer."""
    target = url(settings, "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    with urllib.request.urlopen(target, timeout=timeout) as answer:  # noqa: S310 (a setting)
        body: dict[str, Any] = json.loads(answer.read())
    if body.get("status") != "success":
        raise OSError(f"Prometheus refused {promql!r}: {body.get('error')}")
    return [(series.get("metric", {}), float(series["value"][1])) for series in body["data"]["result"]]

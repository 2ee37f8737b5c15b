"""The services Reelytics runs, in start order, and one status report over all of them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from infra import dagster, kafka, prometheus, redis, spark
from infra.process import ServiceError
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

SERVICE_NAMES = ("kafka", "redis", "spark", "dagster", "prometheus")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    healthy: bool
    detail: str
    pid: int | None


def status(settings: Settings) -> list[ServiceStatus]:
    """Health of every service (each check is quick: a closed port answers no at once)."""
    report = [
        ServiceStatus("kafka", kafka.address(settings), kafka.healthy(settings),
                      "broker answers metadata requests" if kafka.healthy(settings) else
                      "not answering: run `reelytics up`", kafka.managed_pid(settings)),
        ServiceStatus("redis", redis.address(settings), redis.healthy(settings),
                      "PING ok" if redis.healthy(settings) else "not answering: run `reelytics up`",
                      redis.managed_pid(settings)),
    ]
    spark_ok, spark_detail = spark.status(settings)
    report.append(ServiceStatus("spark", settings.spark_master, spark_ok, spark_detail, None))
    web_ok = dagster.healthy(settings)
    daemon_ok = dagster.daemon_running(settings)
    detail = ("webserver up" if web_ok else "webserver down") + ", " + ("daemon up" if daemon_ok else "daemon down")
    report.append(ServiceStatus("dagster", dagster.url(settings), web_ok and daemon_ok,
                                f"{detail}; DAGSTER_HOME={settings.dagster_home_dir}", dagster.managed_pid(settings)))
    prom_ok = prometheus.healthy(settings)
    report.append(ServiceStatus("prometheus", prometheus.address(settings), prom_ok,
                                f"scraping {', '.join(prometheus.scrape_targets(settings))}" if prom_ok else
                                "not answering: run `reelytics up`", prometheus.managed_pid(settings)))
    return report


def _check_spark(settings: Settings) -> str:
    """Spark has no daemon in local mode: each job starts its own; check that jobs can start."""
    ok, detail = spark.status(settings)
    if not ok:
        raise ServiceError(detail)
    return detail


_STARTERS: dict[str, Callable[[Settings], str]] = {
    "kafka": kafka.start,
    "redis": redis.start,
    "spark": _check_spark,
    "dagster": dagster.start,
    "prometheus": prometheus.start,
}

_STOPPERS: dict[str, Callable[[Settings], bool]] = {
    "prometheus": prometheus.stop,
    "dagster": dagster.stop,
    "redis": redis.stop,
    "kafka": kafka.stop,
}


def up(settings: Settings, names: tuple[str, ...] = SERVICE_NAMES,
       on_step: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """Start the named services in order; return what each did. Raises ServiceError with advice."""
    results: dict[str, str] = {}
    for name in SERVICE_NAMES:
        if name in names:
            results[name] = _STARTERS[name](settings)
            if on_step is not None:
                on_step(name, results[name])
    return results


def down(settings: Settings, names: tuple[str, ...] = SERVICE_NAMES) -> dict[str, bool]:
    """Stop the named services Reelytics started (never a service it did not start)."""
    return {name: stop(settings) for name, stop in _STOPPERS.items() if name in names}

"""The batch side's freshness from Dagster: its newest runs, read from the webserver's GraphQL API."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import httpx

from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

_RUNS_QUERY = """
query RecentRuns($limit: Int) {
  runsOrError(limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime } }
    ... on PythonError { message }
  }
}
"""


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if value else None


def recent_runs(settings: Settings, *, limit: int = 5, timeout: float = 2.0) -> dict[str, Any]:
    """``{"runs": [{run_id, job, status, started, ended}, ...]}`` newest first, or ``{"runs": [], "error": ...}``
    when Dagster does not answer (the dashboard says so instead of failing)."""
    url = f"http://{settings.dagster_webserver_host}:{settings.dagster_webserver_port}/graphql"
    try:
        answer = httpx.post(url, json={"query": _RUNS_QUERY, "variables": {"limit": limit}}, timeout=timeout)
        answer.raise_for_status()
        found = answer.json()["data"]["runsOrError"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        logger.debug("Dagster runs not read", exc_info=True)
        return {"runs": [], "error": f"Dagster at {url} did not answer ({exc.__class__.__name__})"}
    if found.get("__typename") != "Runs":
        return {"runs": [], "error": found.get("message", "Dagster refused the query")}
    return {"runs": [{"run_id": run["runId"], "job": run["jobName"], "status": run["status"],
                      "started": _time(run.get("startTime")), "ended": _time(run.get("endTime"))}
                     for run in found["results"]]}

"""The daily model run's I/O: read gold, train and evaluate, keep the version, publish it if it passes the gate.

Also what ``reelytics models promote`` and ``rollback`` do: publish a kept version again (Redis and Delta) and move
the registry's pointer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from batch_layer.models.evaluate import GATE_METRIC, GateDecision, gate
from batch_layer.models.publish import publish_delta, publish_redis
from batch_layer.models.registry import ModelVersion, Registry, RegistryError, new_version
from batch_layer.models.train import TrainingData, TrainParams, UserInfo, train_model
from warehouse_models.recommendations import segment_of

if TYPE_CHECKING:
    import redis

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class TrainingDataError(RuntimeError):
    """Gold does not hold what a training needs; the message says what to build."""


def _sql_date(value: date) -> str:
    return f"DATE '{value.isoformat()}'"


def read_training_data(settings: Settings, *, until: date, days: int) -> TrainingData:
    """The interactions of ``days`` days ending with ``until`` (VOD titles), the catalog and the users, from gold
    through DuckDB (``batch_layer.analyst``)."""
    from batch_layer.analyst import open_duckdb
    from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS

    start = until - timedelta(days=days - 1)
    connection = open_duckdb(settings, specs=(FACT_STREAM_EVENTS, DIM_CONTENT, DIM_USERS))
    try:
        missing = set(connection.missing)
        if missing:
            raise TrainingDataError(f"gold has no {', '.join(sorted(missing))} yet: materialize the warehouse assets "
                                    "(fact_stream_events, dimensions) for the days to train on")
        between = f"event_date BETWEEN {_sql_date(start)} AND {_sql_date(until)}"
        catalog = connection.query(
            "SELECT content_id, content_title, genre_primary, genre_secondary, duration_minutes, cast_members, "
            "director, description FROM dim_content WHERE content_type = 'vod' ORDER BY content_id").to_pylist()
        interactions = connection.query(
            "SELECT user_id, content_id, event_date, sum(coalesce(watch_seconds, 0)) AS watch_seconds, "
            "max(completion_pct) AS completion_pct FROM fact_stream_events "
            f"WHERE {between} AND session_id IS NOT NULL AND NOT coalesce(is_live, false) "
            "AND content_id IN (SELECT content_id FROM dim_content WHERE content_type = 'vod') "
            "GROUP BY user_id, content_id, event_date").to_pandas()
        users = connection.query(
            "WITH devices AS (SELECT user_id, mode(device_type) AS device_type, mode(country) AS country "
            f"FROM fact_stream_events WHERE {between} AND device_type IS NOT NULL GROUP BY user_id) "
            "SELECT coalesce(u.user_id, d.user_id) AS user_id, coalesce(u.location_country, d.country) AS country, "
            "d.device_type, u.preferences FROM (SELECT * FROM dim_users WHERE is_current) u "
            "FULL OUTER JOIN devices d ON u.user_id = d.user_id").to_pylist()
    finally:
        connection.close()
    if not catalog:
        raise TrainingDataError("dim_content has no VOD title: materialize the dimensions asset first")
    if interactions.empty:
        raise TrainingDataError(f"fact_stream_events has no VOD watching between {start} and {until}: materialize "
                                "the warehouse for those days (or train on a range that has data)")
    info = {str(u["user_id"]): UserInfo(segment_of(u["country"], u["device_type"]),
                                        " ".join(u["preferences"] or []))
            for u in users if u["user_id"] is not None}
    return TrainingData(interactions, catalog, info, start.isoformat(), until.isoformat())


@dataclass(frozen=True)
class RunResult:
    version: ModelVersion
    published: bool
    reason: str
    redis: dict[str, Any] | None
    delta_rows: dict[str, int] | None


def run_daily(settings: Settings, *, day: date, client: redis.Redis | None = None,
              progress: Progress = logger.info, data: TrainingData | None = None) -> RunResult:
    """Train on the ``recs_history_days`` ending with ``day``, keep the version, publish it if the gate lets it."""
    registry = Registry(settings.models_path)
    data = data or read_training_data(settings, until=day, days=settings.recs_history_days)
    progress(f"read {len(data.interactions)} user x title x day rows ({data.data_from} .. {data.data_to}), "
             f"{len(data.catalog)} titles, {len(data.users)} users")
    params = TrainParams.from_settings(settings)
    trained = train_model(data, params, progress=progress)
    at = datetime.now(timezone.utc)
    version = registry.save(new_version(at), {**trained.manifest, "trained_at": at.isoformat()}, trained.arrays)
    current = registry.current()
    decision = gate(version.metrics["hybrid"], current.metrics.get("hybrid") if current else None,
                    settings.recs_promote_margin)
    current_to = str(current.manifest.get("data_to") or "") if current else ""
    if decision.publish and current_to and data.data_to and data.data_to < current_to:
        decision = GateDecision(False, f"its data end on {data.data_to}, before the current model's "
                                       f"({current_to}): an older day re-run does not replace a newer model; "
                                       "`reelytics models promote` does, by hand")
    registry.update_manifest(version.version, gate={"publish": decision.publish, "reason": decision.reason,
                                                    "compared_with": current.version if current else None,
                                                    "metric": GATE_METRIC})
    progress(f"gate: {decision.reason}")
    if not decision.publish:
        return RunResult(registry.get(version.version), False, decision.reason, None, None)
    redis_result, delta_rows = publish(settings, registry.get(version.version), client=client, progress=progress)
    registry.set_current(version.version, action="published", note=decision.reason)
    return RunResult(registry.get(version.version), True, decision.reason, redis_result, delta_rows)


def publish(settings: Settings, model: ModelVersion, *, client: redis.Redis | None = None,
            progress: Progress = logger.info) -> tuple[dict[str, Any], dict[str, int]]:
    """Publish a kept version to the gold tables, then to Redis (the pointer swap last: the API serves a version only
    once everything else about it is written)."""
    arrays = model.arrays()  # read from disk once for both
    delta_rows = publish_delta(settings, model, arrays)
    progress(f"model {model.version}: gold tables replaced ({delta_rows})")
    redis_result = publish_redis(client or settings.redis_client(), settings.keys, model, on_progress=progress,
                                 arrays=arrays)
    return redis_result, delta_rows


def promote(settings: Settings, version: str, *, client: redis.Redis | None = None,
            progress: Progress = logger.info) -> ModelVersion:
    """Publish a kept version whatever the gate said (an engineer's decision), and make it current."""
    registry = Registry(settings.models_path)
    model = registry.get(version)
    publish(settings, model, client=client, progress=progress)
    registry.set_current(version, action="promoted", note="promoted by hand")
    return model


def rollback(settings: Settings, *, client: redis.Redis | None = None,
             progress: Progress = logger.info) -> ModelVersion:
    """Publish again the version that was current before the current one."""
    registry = Registry(settings.models_path)
    previous = registry.previous_published()
    if previous is None:
        current = registry.current()
        raise RegistryError("nothing to roll back to: " + (
            f"{current.version} was the first published model" if current else "no model has been published"))
    model = registry.get(previous)
    publish(settings, model, client=client, progress=progress)
    registry.set_current(previous, action="rolled_back", note="rollback")
    return model

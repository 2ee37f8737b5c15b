"""Readers of the speed layer's latest-value views and of its progress, as Redis holds them now.

The additive speed views (engagement, CTR, QoE buckets) are read with their definitions' readers in
``warehouse_models.metrics``, which reconciliation shares; the views here are the ones only apps read: resume
positions, recently watched titles, each account's concurrent streams, traffic alerts, and the speed queries'
progress, from which every answer's speed lag comes. Values are decoded here (strings, floats, aware UTC
datetimes), in the format the speed layer's writers document next to each key in
:mod:`warehouse_models.redis_keys`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis

from warehouse_models.redis_io import text, utc_from_ms
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.redis_plan import Command, Plan, run, scan, score_pairs

SHARED_QUERY = "views"
"""The speed query that writes every view without session state (its progress row is the speed lag's source;
the query is named by ``Settings.speed_query_name``)."""


def _parse(value: bytes | str) -> dict[str, Any]:
    ms, _, position = text(value).partition(":")
    return {"position_seconds": float(position), "event_timestamp": utc_from_ms(int(ms))}


def resume_position(keys: KeyLayout, user_id: str, content_id: str) -> Plan[dict[str, Any] | None]:
    """The user's resume position in one title: ``{"position_seconds", "event_timestamp"}``, None if unknown."""
    (value,) = yield [Command("HGET", keys.resume_position(user_id), content_id)]
    return _parse(value) if value is not None else None


def resume_positions(keys: KeyLayout, user_id: str) -> Plan[dict[str, dict[str, Any]]]:
    """Every title's resume position of the user: content id -> ``{"position_seconds", "event_timestamp"}``."""
    (fields,) = yield [Command("HGETALL", keys.resume_position(user_id))]
    return {text(field): _parse(value) for field, value in sorted(fields.items())}


def read_resume(client: redis.Redis, keys: KeyLayout, user_id: str,
                content_id: str | None = None) -> dict[str, Any] | dict[str, dict[str, Any]] | None:
    """The resume position of one title, or of all the user's titles when ``content_id`` is None."""
    if content_id is not None:
        return run(client, resume_position(keys, user_id, content_id))
    return run(client, resume_positions(keys, user_id))


def recent_titles(keys: KeyLayout, user_id: str, n: int = 10) -> Plan[list[tuple[str, datetime]]]:
    """The user's ``n`` most recently watched titles, newest first, with when (UTC) they were last watched."""
    if n <= 0:
        return []
    (flat,) = yield [Command("ZRANGE", keys.recent_items(user_id), 0, n - 1, "REV", "WITHSCORES")]
    return [(text(member), utc_from_ms(int(score))) for member, score in score_pairs(flat)]


def recent_searches(keys: KeyLayout, user_id: str, n: int = 3) -> Plan[list[tuple[str, datetime]]]:
    """The user's ``n`` newest searches (normalised text), newest first, with when (UTC) each was made."""
    if n <= 0:
        return []
    (flat,) = yield [Command("ZRANGE", keys.recent_searches(user_id), 0, n - 1, "REV", "WITHSCORES")]
    return [(text(member), utc_from_ms(int(score))) for member, score in score_pairs(flat)]


def notifications(keys: KeyLayout, user_id: str, n: int = 20) -> Plan[list[dict[str, Any]]]:
    """The user's newest ``n`` release notifications, newest first: the title and why (its genres)."""
    (flat,) = yield [Command("ZRANGE", keys.notifications(user_id), 0, n - 1, "REV", "WITHSCORES")]
    pairs = [(text(member), int(score)) for member, score in score_pairs(flat)]
    if not pairs:
        return []
    (details,) = yield [Command("HMGET", keys.releases(), *(content_id for content_id, _ in pairs))]
    out = []
    for (content_id, ms), raw in zip(pairs, details, strict=True):
        release = json.loads(raw) if raw is not None else {}
        out.append({"content_id": content_id, "title": release.get("title"), "notified_at": utc_from_ms(ms),
                    "genres": [g for g in (release.get("genre_primary"), release.get("genre_secondary")) if g],
                    "release_date": release.get("release_date")})
    return out


def read_recent(client: redis.Redis, keys: KeyLayout, user_id: str, n: int = 10) -> list[tuple[str, datetime]]:
    return run(client, recent_titles(keys, user_id, n))


def account_concurrency(keys: KeyLayout, account_id: str) -> Plan[dict[str, Any] | None]:
    """The account's view: ``{"limit", "active", "over_limit", "as_of_ms"}``, or None when nothing is known."""
    (raw,) = yield [Command("GET", keys.account_concurrency(account_id))]
    return cast("dict[str, Any]", json.loads(raw)) if raw is not None else None


def read_concurrency(client: redis.Redis, keys: KeyLayout, account_id: str) -> dict[str, Any] | None:
    return run(client, account_concurrency(keys, account_id))


def _alert(values: Mapping[Any, Any]) -> dict[str, Any]:
    alert: dict[str, Any] = {text(k): text(v) for k, v in values.items()}
    for name in ("rate", "since", "until"):
        if name in alert:
            alert[name] = int(alert[name])
    for name in ("baseline", "factor"):
        if name in alert:
            alert[name] = float(alert[name])
    return alert


def recent_alerts(keys: KeyLayout, n: int = 20) -> Plan[list[dict[str, Any]]]:
    """The newest ``n`` alert entries (raised and cleared), newest first, each with its stream ``id``."""
    (entries,) = yield [Command("XREVRANGE", keys.spike_alerts(), "+", "-", "COUNT", n)]
    return [{"id": text(entry_id), **_alert(values)} for entry_id, values in entries or []
            if entry_id is not None and values is not None]


def read_alerts(client: redis.Redis, keys: KeyLayout, n: int = 20) -> list[dict[str, Any]]:
    return run(client, recent_alerts(keys, n))


def active_alerts(keys: KeyLayout) -> Plan[dict[str, dict[str, Any]]]:
    """The open alerts: scope -> ``{scope, rate, baseline, factor, since}``."""
    (fields,) = yield [Command("HGETALL", keys.spike_active())]
    return {text(scope): json.loads(alert) for scope, alert in fields.items()}


def read_active_alerts(client: redis.Redis, keys: KeyLayout) -> dict[str, dict[str, Any]]:
    return run(client, active_alerts(keys))


def live_streams(keys: KeyLayout, *, heartbeat_timeout_seconds: int, now: float | None = None
                 ) -> Plan[tuple[int, datetime | None]]:
    """Streams playing across every account: sessions heard within the heartbeat timeout of the newest heartbeat
    the speed layer recorded (or of now, if a clock ahead of ours sent that one), that have not ended; with the
    time it is counted at (None: no heartbeat recorded)."""
    (reply,) = yield [Command("ZRANGE", keys.live_sessions(), -1, -1, "WITHSCORES")]
    newest = score_pairs(reply)
    if not newest:
        return 0, None
    as_of = min(int(newest[0][1]), int((time.time() if now is None else now) * 1000))
    (count,) = yield [Command("ZCOUNT", keys.live_sessions(), as_of - heartbeat_timeout_seconds * 1000, "+inf")]
    return int(count), utc_from_ms(as_of)


def count_live_streams(client: redis.Redis, keys: KeyLayout, *, heartbeat_timeout_seconds: int
                       ) -> tuple[int, datetime | None]:
    return run(client, live_streams(keys, heartbeat_timeout_seconds=heartbeat_timeout_seconds))


def ctr_rates(keys: KeyLayout, *, limit: int = 50) -> Plan[list[dict[str, Any]]]:
    """Every rail button's impressions, clicks and rate over the rolling trending window (at most ``limit``
    buttons, found with SCAN: for the dashboard, not for apps), most impressions first."""
    prefix = keys.ctr_rate("", "")[:-1]
    found = yield from scan(prefix + "*", limit=limit)
    replies = yield [Command("HGETALL", key) for key in found]
    out = []
    for key, fields in zip(found, replies, strict=True):
        rail, _, button = key[len(prefix):].rpartition(":")
        values = {text(k): text(v) for k, v in fields.items()}
        if values:
            out.append({"rail_id": rail, "button_id": button, "impressions": int(values.get("impressions", 0)),
                        "clicks": int(values.get("clicks", 0)), "rate": float(values.get("rate", 0.0))})
    return sorted(out, key=lambda r: (-r["impressions"], r["rail_id"], r["button_id"]))


def read_ctr_rates(client: redis.Redis, keys: KeyLayout, *, limit: int = 50) -> list[dict[str, Any]]:
    return run(client, ctr_rates(keys, limit=limit))


@dataclass(frozen=True)
class SpeedFreshness:
    """How far behind the speed layer's shared query is, from its newest progress row."""

    lag_seconds: float | None
    """Seconds since the newest micro-batch of the shared query finished (None: it never ran, or its row
    expired). Under steady traffic this is what an event produced now waits at most, plus one batch."""
    kafka_lag: int | None
    """Records on the query's topics it had not read when that batch started."""


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def speed_freshness(keys: KeyLayout, query_name: str, *, now: float | None = None) -> Plan[SpeedFreshness]:
    """The shared query's freshness from its progress row (one ``HMGET``); ``query_name``:
    ``settings.speed_query_name(SHARED_QUERY)``."""
    (row,) = yield [Command("HMGET", keys.speed_progress(query_name), "timestamp", "batch_duration_ms", "kafka_lag")]
    started, duration, lag = row
    began = _iso(text(started)) if started is not None else None
    if began is None:
        return SpeedFreshness(None, None)
    finished = began.timestamp() + (int(text(duration)) if duration is not None else 0) / 1000
    clock = time.time() if now is None else now
    kafka_lag = int(text(lag)) if lag is not None and text(lag).lstrip("-").isdigit() else None
    return SpeedFreshness(round(max(0.0, clock - finished), 3), kafka_lag)

"""Every answer the serving API gives, composed from the batch and speed readers and merged (no HTTP here).

Each method returns the answer's fields and a :class:`~serving.views.merge.Freshness`, or raises
:class:`NotFound` for an id neither layer knows. Redis errors propagate (the API turns them into 503).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from serving.views import speed as speed_views
from serving.views.batch import (
    read_batch_content_totals,
    read_batch_ctr,
    read_batch_qoe,
    read_batch_trending_baselines,
    read_batch_user_totals,
)
from serving.views.merge import Freshness, add_counts, epoch_to_utc, is_complete, speed_since
from serving.views.playback import Decision, authorize, read_decisions
from warehouse_models.batch_versions import BatchRead, current_version
from warehouse_models.metrics.ctr import COUNTS, click_rate, read_ctr
from warehouse_models.metrics.engagement import METRICS, read_engagement_windows
from warehouse_models.metrics.qoe import merge_sums, qoe_metrics, read_qoe
from warehouse_models.metrics.trending import read_trending
from warehouse_models.redis_keys import ContentKind
from warehouse_models.settings import Settings


class NotFound(LookupError):
    """Neither layer knows the id; the message names it."""


@dataclass(frozen=True)
class Answer:
    data: dict[str, Any]
    freshness: Freshness


class Views:
    """The read side over one Redis: every route's answer."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.keys = settings.keys
        self.shared_query = settings.speed_query_name(speed_views.SHARED_QUERY)

    # --- freshness ---------------------------------------------------------------------------------------
    def _freshness(self, batch: BatchRead | None, *, speed: bool, now: float) -> Freshness:
        layers = tuple(name for name, used in (("batch", batch is not None), ("speed", speed)) if used)
        lag = speed_views.speed_freshness(self.client, self.keys, self.shared_query, now=now) if speed else None
        return Freshness(
            layers=layers,
            watermark=epoch_to_utc(batch.watermark) if batch is not None else None,
            batch_version=batch.version if batch is not None else None,
            speed_lag_seconds=lag.lag_seconds if lag is not None else None,
            speed_kafka_lag=lag.kafka_lag if lag is not None else None,
            complete=is_complete(batch, now=now) if batch is not None else speed,
        )

    def freshness(self) -> Answer:
        """The pipeline's freshness alone: the current batch version and W, the speed layer's lag."""
        now = time.time()
        current = current_version(self.client, self.keys)
        batch = BatchRead(current[0], current[1], {}) if current is not None else None
        return Answer({}, self._freshness(batch, speed=True, now=now))

    # --- additive views: batch(W) + speed(>= W) ----------------------------------------------------------
    def engagement(self, user_id: str, *, window_minutes: int) -> Answer:
        """All-time totals (batch before W + speed from W) and the 5-second windows of the last minutes."""
        now = time.time()
        batch = read_batch_user_totals(self.client, self.keys, user_id)
        since = speed_since(batch)
        recent_from = now - window_minutes * 60
        windows = read_engagement_windows(self.client, self.keys, user_id,
                                          since_epoch=min(since, recent_from) if since is not None else None,
                                          now_epoch=now)
        speed_totals = dict.fromkeys(METRICS, 0)
        for start, window in windows.items():
            if since is None or start >= since:
                for metric, value in window.items():
                    speed_totals[metric] += value
        totals = add_counts(batch.values if batch is not None else None, speed_totals, METRICS)
        if not any(totals.values()) and not any(windows.values()):
            raise NotFound(f"no events for user {user_id!r}")
        return Answer({
            "user_id": user_id,
            "totals": {metric: int(value) for metric, value in totals.items()},
            "windows": [{"start": epoch_to_utc(start), **window} for start, window in windows.items()
                        if start >= recent_from],
        }, self._freshness(batch, speed=True, now=now))

    def ctr(self, rail_id: str, button_id: str) -> Answer:
        now = time.time()
        batch = read_batch_ctr(self.client, self.keys, rail_id, button_id)
        since = speed_since(batch)
        live = read_ctr(self.client, self.keys, rail_id, button_id,
                        since_epoch=since if since is not None else 0, now_epoch=now)
        counts = add_counts(batch.values if batch is not None else None, live, COUNTS)
        if not counts["impressions"] and not counts["clicks"]:
            raise NotFound(f"no impressions or clicks for rail {rail_id!r}, button {button_id!r}")
        impressions, clicks = int(counts["impressions"]), int(counts["clicks"])
        return Answer({"rail_id": rail_id, "button_id": button_id, "impressions": impressions, "clicks": clicks,
                       "rate": click_rate(clicks, impressions)}, self._freshness(batch, speed=True, now=now))

    def qoe(self, content_id: str, *, device_type: str, country: str) -> Answer:
        now = time.time()
        batch = read_batch_qoe(self.client, self.keys, content_id, device_type, country)
        live = read_qoe(self.client, self.keys, content_id, device_type=device_type, country=country,
                        since=speed_since(batch))
        sums = merge_sums([batch.values if batch is not None else {}, *live.values()])
        if not any(sums.values()):
            raise NotFound(f"no plays of {content_id!r} on {device_type!r} in {country!r}")
        return Answer({"content_id": content_id, "device_type": device_type, "country": country,
                       **qoe_metrics(sums)}, self._freshness(batch, speed=True, now=now))

    # --- batch only --------------------------------------------------------------------------------------
    def content_stats(self, content_id: str) -> Answer:
        """A title's views, watch time and completion before W (the speed layer keeps no per-title totals)."""
        now = time.time()
        batch = read_batch_content_totals(self.client, self.keys, content_id)
        if batch is None or not batch.values["known"]:
            raise NotFound(f"no views of {content_id!r} before the batch watermark")
        values = {k: v for k, v in batch.values.items() if k != "known"}
        return Answer({"content_id": content_id, **values}, self._freshness(batch, speed=False, now=now))

    # --- speed, with the batch baseline ------------------------------------------------------------------
    def trending(self, kind: ContentKind, *, limit: int) -> Answer:
        """The titles with the most distinct viewers in the newest trending window, with the day's baseline."""
        now = time.time()
        ranking = read_trending(self.client, self.keys, kind, limit)
        batch = read_batch_trending_baselines(self.client, self.keys, kind)
        baselines = batch.values if batch is not None else {}
        items = []
        for content_id, viewers in ranking:
            baseline = baselines.get(content_id)
            items.append({"content_id": content_id, "viewers": viewers, "baseline": baseline,
                          "lift": viewers / baseline if baseline else None})
        return Answer({"kind": kind, "items": items}, self._freshness(batch, speed=True, now=now))

    # --- latest values (speed) ---------------------------------------------------------------------------
    def resume(self, user_id: str, content_id: str | None) -> Answer:
        now = time.time()
        if content_id is not None:
            found = speed_views.read_resume(self.client, self.keys, user_id, content_id)
            if found is None:
                raise NotFound(f"no position of user {user_id!r} in {content_id!r}")
            positions: dict[str, dict[str, Any]] = {content_id: cast("dict[str, Any]", found)}
        else:
            positions = cast("dict[str, dict[str, Any]]", speed_views.read_resume(self.client, self.keys, user_id))
            if not positions:
                raise NotFound(f"no resume positions for user {user_id!r}")
        return Answer({"user_id": user_id, "positions": [
            {"content_id": cid, "position_seconds": p["position_seconds"], "event_time": p["event_timestamp"]}
            for cid, p in sorted(positions.items(), key=lambda kv: kv[1]["event_timestamp"], reverse=True)]},
            self._freshness(None, speed=True, now=now))

    def recent(self, user_id: str, *, limit: int) -> Answer:
        now = time.time()
        items = speed_views.read_recent(self.client, self.keys, user_id, limit)
        return Answer({"user_id": user_id, "items": [{"content_id": cid, "watched_at": at} for cid, at in items]},
                      self._freshness(None, speed=True, now=now))

    # --- admin: across accounts --------------------------------------------------------------------------
    def alerts(self, *, limit: int) -> Answer:
        now = time.time()
        return Answer({"active": list(speed_views.read_active_alerts(self.client, self.keys).values()),
                       "recent": speed_views.read_alerts(self.client, self.keys, limit)},
                      self._freshness(None, speed=True, now=now))

    def account_streams(self, account_id: str) -> Answer:
        """The speed layer's concurrency view of the account (which sessions play, which went over)."""
        now = time.time()
        view = speed_views.read_concurrency(self.client, self.keys, account_id)
        if view is None:
            raise NotFound(f"no streams of account {account_id!r}")
        return Answer({"account_id": account_id, "limit": view["limit"], "active": view["active"],
                       "over_limit": view["over_limit"], "as_of": epoch_to_utc(view["as_of_ms"] / 1000)},
                      self._freshness(None, speed=True, now=now))

    def decisions(self, *, minutes: int) -> Answer:
        now = time.time()
        per_minute = read_decisions(self.client, self.keys, minutes=minutes, now=now)
        return Answer({"minutes": [{"start": epoch_to_utc(b), "counts": c} for b, c in per_minute.items()]},
                      self._freshness(None, speed=False, now=now))

    def dashboard(self, *, top: int = 10, qoe_titles: int = 5, minutes: int = 30) -> Answer:
        """Everything the live dashboard draws, in one answer: trending, streams playing now and authorize answers
        per minute, CTR per rail button, QoE of the top titles over the last hour, alerts, freshness."""
        now = time.time()
        trending = {kind: self.trending(kind, limit=top).data["items"] for kind in ("vod", "live")}
        streams, streams_as_of = speed_views.count_live_streams(
            self.client, self.keys, heartbeat_timeout_seconds=self.settings.speed_heartbeat_timeout_seconds)
        top_titles = sorted((item for items in trending.values() for item in items),
                            key=lambda item: -item["viewers"])[:qoe_titles]
        qoe = []
        for item in top_titles:
            sums = merge_sums(read_qoe(self.client, self.keys, item["content_id"], since=int(now) - 3600).values())
            qoe.append({"content_id": item["content_id"], **qoe_metrics(sums)})
        current = current_version(self.client, self.keys)
        batch = BatchRead(current[0], current[1], {}) if current is not None else None
        return Answer({
            "trending": trending,
            "streams": {"playing": streams, "as_of": streams_as_of},
            "decisions": [{"start": epoch_to_utc(b), "counts": c}
                          for b, c in read_decisions(self.client, self.keys, minutes=minutes, now=now).items()],
            "ctr": speed_views.read_ctr_rates(self.client, self.keys, limit=top),
            "qoe_last_hour": qoe,
            "alerts": {"active": list(speed_views.read_active_alerts(self.client, self.keys).values()),
                       "recent": speed_views.read_alerts(self.client, self.keys, 10)},
        }, self._freshness(batch, speed=True, now=now))

    # --- playback ----------------------------------------------------------------------------------------
    def authorize(self, *, account_id: str, session_id: str, device_type: str) -> Decision:
        return authorize(self.client, self.keys, account_id=account_id, session_id=session_id,
                         device_type=device_type,
                         heartbeat_timeout_seconds=self.settings.speed_heartbeat_timeout_seconds,
                         lease_seconds=self.settings.serving_lease_seconds)

"""Every answer the serving API gives, composed from the batch and speed readers and merged (no HTTP here).

Each method is a read plan (:mod:`warehouse_models.redis_plan`): the API runs it on its event loop with an
asyncio client, a blocking caller with :func:`~warehouse_models.redis_plan.run`. It returns an :class:`Answer`
(the fields and a :class:`~serving.views.merge.Freshness`) or raises :class:`NotFound` for an id neither layer
knows. Redis errors propagate (the API turns them into 503).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeVar

from serving.views import speed as speed_views
from serving.views.batch import (
    batch_content_totals,
    batch_ctr,
    batch_qoe,
    batch_trending_baselines,
    batch_user_totals,
    batch_variants,
)
from serving.views.merge import Freshness, add_counts, daily_totals, epoch_to_utc, is_complete, speed_since
from serving.views.playback import Decision, authorize, decisions
from serving.views.recommendations import (
    BATCH_VARIANT,
    RECENT_FOR_LIVE,
    SEARCHES_FOR_LIVE,
    ModelBundle,
    Weights,
    load_bundle,
    model_as_of,
    model_version,
    published_list,
    rerank,
    similar_titles,
    user_model,
)
from serving.views.speed import SpeedFreshness
from warehouse_models.batch_versions import BatchRead, current_version_plan
from warehouse_models.metrics.ctr import COUNTS, click_rate, counts_from_hours, ctr_counts, live_ctr_hours
from warehouse_models.metrics.engagement import METRICS, added_up, hours_from, recent_engagement
from warehouse_models.metrics.qoe import merge_sums, qoe_buckets, qoe_metrics
from warehouse_models.metrics.trending import trending_ranking
from warehouse_models.metrics.variants import figures as variant_figures
from warehouse_models.metrics.variants import parse_variants, variant_of
from warehouse_models.recommendations import GLOBAL_SEGMENT, segment_of
from warehouse_models.redis_keys import RECENT_ITEMS_MAX, ContentKind
from warehouse_models.redis_plan import Plan, gather
from warehouse_models.settings import Settings

T = TypeVar("T")


class NotFound(LookupError):
    """Neither layer knows the id; the message names it."""


class ModelMissing(LookupError):
    """The published model's keys are gone (a republication under way, or Redis lost them)."""


NO_MODEL = ("no recommendation model has been published yet: materialize the recommendation_model asset in Dagster "
            "(job models_daily) or run `reelytics models train`")


@dataclass(frozen=True)
class Answer:
    data: dict[str, Any]
    freshness: Freshness


class Views:
    """The read side of one deployment (its settings and key layout): every route's answer, as a read plan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = settings.keys
        self.shared_query = settings.speed_query_name(speed_views.SHARED_QUERY)
        self._bundles: dict[str, ModelBundle] = {}
        self.variants = parse_variants(settings.recs_variants)
        self.weights = Weights(als=settings.recs_als_weight, content=settings.recs_content_weight,
                               popularity=settings.recs_popularity_weight, live=settings.recs_live_weight)

    # --- freshness ---------------------------------------------------------------------------------------
    def _lag(self, now: float) -> Plan[SpeedFreshness]:
        """The speed layer's lag: read side by side with an answer's first read (:func:`gather`)."""
        return speed_views.speed_freshness(self.keys, self.shared_query, now=now)

    def _with_lag(self, plan: Plan[T], now: float) -> Plan[tuple[T, SpeedFreshness]]:
        value, lag = yield from gather(plan, self._lag(now))
        return value, lag

    @staticmethod
    def _compose(batch: BatchRead | None, lag: SpeedFreshness | None, *, now: float,
                 additive: bool = False) -> Freshness:
        """``additive``: an all-time total, complete only with a batch part whose W the speed buckets still hold."""
        speed = lag is not None
        layers = tuple(name for name, used in (("batch", batch is not None), ("speed", speed)) if used)
        return Freshness(
            layers=layers,
            watermark=epoch_to_utc(batch.watermark) if batch is not None else None,
            batch_version=batch.version if batch is not None else None,
            speed_lag_seconds=lag.lag_seconds if lag is not None else None,
            speed_kafka_lag=lag.kafka_lag if lag is not None else None,
            complete=is_complete(batch, now=now) if batch is not None else (speed and not additive),
        )

    def _current(self) -> Plan[BatchRead | None]:
        current = yield from current_version_plan(self.keys)
        return BatchRead(current[0], current[1], {}) if current is not None else None

    def freshness(self) -> Plan[Answer]:
        """The pipeline's freshness alone: the current batch version and W, the speed layer's lag."""
        now = time.time()
        batch, lag = yield from self._with_lag(self._current(), now)
        return Answer({}, self._compose(batch, lag, now=now))

    # --- additive views: batch(W) + speed(>= W) ----------------------------------------------------------
    def engagement(self, user_id: str, *, window_minutes: int, days: int = 7) -> Plan[Answer]:
        """All-time totals (batch before W + speed from W), the daily totals of the last ``days`` UTC dates (today
        included; the batch view's days before W + the speed layer's hours from W) and the 5-second windows of
        the last minutes."""
        now = time.time()
        recent_from = now - window_minutes * 60
        # Two rounds in all: the batch part (W, then its hash) side by side with every live hourly hash and the
        # last minutes' windows; the hours from W are then among the hourly hashes already read (W is an hour
        # boundary; without a batch part every live hour counts).
        (batch, lag), (live, windows) = yield from gather(
            self._with_lag(batch_user_totals(self.keys, user_id), now),
            recent_engagement(self.keys, user_id, since_epoch=recent_from, now_epoch=now))
        since = speed_since(batch)
        hours = yield from hours_from(self.keys, user_id, live, since_epoch=since if since is not None else 0,
                                      now_epoch=now)
        speed_totals = added_up(hours)
        totals = add_counts(batch.values if batch is not None else None, speed_totals, METRICS)
        if not any(totals.values()) and not any(windows.values()):
            raise NotFound(f"no events for user {user_id!r}")
        daily = daily_totals(batch.values["days"] if batch is not None else {}, hours, METRICS, days=days, now=now)
        return Answer({
            "user_id": user_id,
            "totals": {metric: int(value) for metric, value in totals.items()},
            "daily": [{"date": day, **values} for day, values in daily.items()],
            "windows": [{"start": epoch_to_utc(start), **window} for start, window in windows.items()
                        if start >= recent_from],
        }, self._compose(batch, lag, now=now, additive=True))

    def ctr(self, rail_id: str, button_id: str) -> Plan[Answer]:
        now = time.time()
        # Two rounds: the batch part (W, then its hash) beside every live hourly aggregate; the hours from W are
        # among those (W is an hour boundary; were it not, the minute buckets take one more round).
        (batch, lag), hours = yield from gather(self._with_lag(batch_ctr(self.keys, rail_id, button_id), now),
                                                live_ctr_hours(self.keys, rail_id, button_id, now_epoch=now))
        since = speed_since(batch)
        live = counts_from_hours(hours, since_epoch=since if since is not None else 0)
        if live is None:
            live = yield from ctr_counts(self.keys, rail_id, button_id, since_epoch=since if since is not None else 0,
                                         now_epoch=now)
        counts = add_counts(batch.values if batch is not None else None, live, COUNTS)
        if not counts["impressions"] and not counts["clicks"]:
            raise NotFound(f"no impressions or clicks for rail {rail_id!r}, button {button_id!r}")
        impressions, clicks = int(counts["impressions"]), int(counts["clicks"])
        return Answer({"rail_id": rail_id, "button_id": button_id, "impressions": impressions, "clicks": clicks,
                       "rate": click_rate(clicks, impressions)}, self._compose(batch, lag, now=now, additive=True))

    def qoe(self, content_id: str, *, device_type: str, country: str) -> Plan[Answer]:
        now = time.time()
        batch, lag = yield from self._with_lag(batch_qoe(self.keys, content_id, device_type, country), now)
        live = yield from qoe_buckets(self.keys, content_id, device_type=device_type, country=country,
                                      since=speed_since(batch), now_epoch=now)
        sums = merge_sums([batch.values if batch is not None else {}, *live.values()])
        if not any(sums.values()):
            raise NotFound(f"no plays of {content_id!r} on {device_type!r} in {country!r}")
        return Answer({"content_id": content_id, "device_type": device_type, "country": country,
                       **qoe_metrics(sums)}, self._compose(batch, lag, now=now, additive=True))

    # --- batch only --------------------------------------------------------------------------------------
    def content_stats(self, content_id: str) -> Plan[Answer]:
        """A title's views, watch time, completion and drop-off curve before W (the speed layer keeps no per-title
        totals)."""
        now = time.time()
        batch = yield from batch_content_totals(self.keys, content_id)
        if batch is None or not batch.values["known"]:
            raise NotFound(f"no views of {content_id!r} before the batch watermark")
        values = {k: v for k, v in batch.values.items() if k not in ("known", "dropoff")}
        curve = batch.values["dropoff"]
        values["dropoff"] = [{"percent": p, "share": share} for p, share in curve] if curve is not None else None
        return Answer({"content_id": content_id, **values}, self._compose(batch, None, now=now))

    # --- speed, with the batch baseline ------------------------------------------------------------------
    def _trending_items(self, kind: ContentKind, limit: int, country: str | None = None
                        ) -> Plan[tuple[list[dict[str, Any]], BatchRead | None]]:
        ranking = yield from trending_ranking(self.keys, kind, limit, country)
        # The baselines are the day's over every country: a country's viewers are not measured against them.
        batch = None
        if country is None:
            batch = yield from batch_trending_baselines(self.keys, kind, [content_id for content_id, _ in ranking])
        baselines = batch.values if batch is not None else {}
        items = []
        for content_id, viewers in ranking:
            baseline = baselines.get(content_id)
            items.append({"content_id": content_id, "viewers": viewers, "baseline": baseline,
                          "lift": viewers / baseline if baseline else None})
        return items, batch

    def trending(self, kind: ContentKind, *, limit: int, country: str | None = None) -> Plan[Answer]:
        """The titles with the most distinct viewers in the newest trending window (over every country, or in
        ``country``), with the day's baseline over every country."""
        now = time.time()
        (items, batch), lag = yield from self._with_lag(self._trending_items(kind, limit, country), now)
        return Answer({"kind": kind, "country": country, "items": items}, self._compose(batch, lag, now=now))

    # --- latest values (speed) ---------------------------------------------------------------------------
    def resume(self, user_id: str, content_id: str | None) -> Plan[Answer]:
        now = time.time()
        if content_id is not None:
            found, lag = yield from self._with_lag(speed_views.resume_position(self.keys, user_id, content_id), now)
            if found is None:
                raise NotFound(f"no position of user {user_id!r} in {content_id!r}")
            positions = {content_id: found}
        else:
            positions, lag = yield from self._with_lag(speed_views.resume_positions(self.keys, user_id), now)
            if not positions:
                raise NotFound(f"no resume positions for user {user_id!r}")
        return Answer({"user_id": user_id, "positions": [
            {"content_id": cid, "position_seconds": p["position_seconds"], "event_time": p["event_timestamp"]}
            for cid, p in sorted(positions.items(), key=lambda kv: kv[1]["event_timestamp"], reverse=True)]},
            self._compose(None, lag, now=now))

    def recent(self, user_id: str, *, limit: int) -> Plan[Answer]:
        now = time.time()
        items, lag = yield from self._with_lag(speed_views.recent_titles(self.keys, user_id, limit), now)
        return Answer({"user_id": user_id, "items": [{"content_id": cid, "watched_at": at} for cid, at in items]},
                      self._compose(None, lag, now=now))

    # --- recommendation experiments -------------------------------------------------------------------------
    def _variants(self) -> Plan[tuple[list[dict[str, Any]], BatchRead | None]]:
        batch = yield from batch_variants(self.keys)
        totals = batch.values if batch is not None else {}
        items = [{"variant": name, "share": buckets / 100, **{k: int(v) if k not in ("watch_seconds",
                  "watch_seconds_sq") else v for k, v in totals.get(name, {}).items()},
                  **variant_figures(totals.get(name, {}))} for name, buckets in self.variants]
        return items, batch

    def experiments(self) -> Plan[Answer]:
        """Each recommendation variant's CTR, watch time per user and completion with 95 % intervals, over the
        ``recs_variant_days`` before W (batch)."""
        now = time.time()
        items, batch = yield from self._variants()
        return Answer({"salt": self.settings.recs_variant_salt, "days": self.settings.recs_variant_days,
                       "variants": items}, self._compose(batch, None, now=now))

    # --- admin: across accounts --------------------------------------------------------------------------
    def alerts(self, *, limit: int) -> Plan[Answer]:
        now = time.time()
        active, recent, lag = yield from gather(speed_views.active_alerts(self.keys),
                                                speed_views.recent_alerts(self.keys, limit), self._lag(now))
        return Answer({"active": list(active.values()), "recent": recent}, self._compose(None, lag, now=now))

    def account_streams(self, account_id: str) -> Plan[Answer]:
        """The speed layer's concurrency view of the account (which sessions play, which went over)."""
        now = time.time()
        view, lag = yield from self._with_lag(speed_views.account_concurrency(self.keys, account_id), now)
        if view is None:
            raise NotFound(f"no streams of account {account_id!r}")
        return Answer({"account_id": account_id, "limit": view["limit"], "active": view["active"],
                       "over_limit": view["over_limit"], "as_of": epoch_to_utc(view["as_of_ms"] / 1000)},
                      self._compose(None, lag, now=now))

    def decisions(self, *, minutes: int) -> Plan[Answer]:
        now = time.time()
        per_minute = yield from decisions(self.keys, minutes=minutes, now=now)
        return Answer({"minutes": [{"start": epoch_to_utc(b), "counts": c} for b, c in per_minute.items()]},
                      self._compose(None, None, now=now))

    def dashboard(self, *, top: int = 10, qoe_titles: int = 5, minutes: int = 30) -> Plan[Answer]:
        """Everything the live dashboard draws, in one answer: trending, streams playing now and authorize answers
        per minute, CTR per rail button, QoE of the top titles over the last hour, alerts, freshness."""
        now = time.time()
        timeout = self.settings.speed_heartbeat_timeout_seconds
        found = yield from gather(
            self._trending_items("vod", top), self._trending_items("live", top),
            speed_views.live_streams(self.keys, heartbeat_timeout_seconds=timeout, now=now),
            decisions(self.keys, minutes=minutes, now=now), speed_views.ctr_rates(self.keys, limit=top),
            speed_views.active_alerts(self.keys), speed_views.recent_alerts(self.keys, 10), self._current(),
            self._lag(now), self._variants())
        (vod, _), (live, _), (streams, streams_as_of), per_minute, rates, active, recent, batch, lag, (variants, _) = \
            found
        trending = {"vod": vod, "live": live}
        top_titles = sorted((item for items in trending.values() for item in items),
                            key=lambda item: -item["viewers"])[:qoe_titles]
        slices = yield from gather(*(qoe_buckets(self.keys, item["content_id"], since=int(now) - 3600)
                                     for item in top_titles))
        qoe = [{"content_id": item["content_id"], **qoe_metrics(merge_sums(buckets.values()))}
               for item, buckets in zip(top_titles, slices, strict=True)]
        return Answer({
            "trending": trending,
            "streams": {"playing": streams, "as_of": streams_as_of},
            "decisions": [{"start": epoch_to_utc(b), "counts": c} for b, c in per_minute.items()],
            "ctr": rates,
            "qoe_last_hour": qoe,
            "alerts": {"active": list(active.values()), "recent": recent},
            "experiments": variants,
        }, self._compose(batch, lag, now=now))

    # --- recommendations: the published model, re-ranked live ---------------------------------------------
    def _bundle(self, version: str) -> Plan[ModelBundle]:
        found = self._bundles.get(version)
        if found is None:
            found = yield from load_bundle(self.keys, version)
            if found is None:
                raise ModelMissing(f"model {version} is current but its catalog bundle is missing in Redis")
            self._bundles = {version: found}  # one version at a time: the pointer moves once a day
        return found

    def _model_freshness(self, bundle: ModelBundle, lag: SpeedFreshness | None) -> Freshness:
        return Freshness(layers=("batch", "speed") if lag is not None else ("batch",), watermark=model_as_of(bundle),
                         batch_version=bundle.version, speed_lag_seconds=lag.lag_seconds if lag else None,
                         speed_kafka_lag=lag.kafka_lag if lag else None, complete=True)

    def recommendations(self, user_id: str, *, limit: int, country: str | None = None,
                        device_type: str | None = None) -> Plan[Answer]:
        """The user's live recommendations with reasons (``serving.views.recommendations``)."""
        now = time.time()
        version, recent, searches, lag = yield from gather(
            model_version(self.keys), speed_views.recent_titles(self.keys, user_id, RECENT_ITEMS_MAX),
            speed_views.recent_searches(self.keys, user_id, SEARCHES_FOR_LIVE), self._lag(now))
        if version is None:
            raise NotFound(NO_MODEL)
        recent_ids = [content_id for content_id, _ in recent]  # every title the speed layer remembers: excluded
        steering = recent_ids[:RECENT_FOR_LIVE]
        if version in self._bundles:
            bundle = self._bundles[version]
            user, similar = yield from user_model(self.keys, version, user_id, steering)
        else:
            bundle, (user, similar) = yield from gather(self._bundle(version),
                                                        user_model(self.keys, version, user_id, steering))
        if country is not None or device_type is not None:
            segment = segment_of(country, device_type)
        else:
            segment = user.segment if user is not None and user.segment else GLOBAL_SEGMENT
        variant = variant_of(user_id, self.variants, self.settings.recs_variant_salt)
        if variant == BATCH_VARIANT:
            items = published_list(bundle, user=user, segment=segment, n=limit)
        else:
            items = rerank(bundle, user=user, segment=segment, recent=recent_ids, similar=similar,
                           searches=[query for query, _ in searches], weights=self.weights, n=limit)
        return Answer({
            "user_id": user_id, "model_version": version, "variant": variant, "known_user": user is not None,
            "segment": segment,
            "recent": [{"content_id": content_id, "watched_at": at} for content_id, at in recent[:RECENT_FOR_LIVE]],
            "searches": [{"query": query, "searched_at": at} for query, at in searches],
            "items": [{"content_id": r.content_id, "title": r.title, "score": r.score, "reason": r.reason}
                      for r in items],
        }, self._model_freshness(bundle, lag))

    def notifications(self, user_id: str, *, limit: int) -> Plan[Answer]:
        """The user's release notifications (speed layer), newest first; an empty feed is an empty list."""
        now = time.time()
        items, lag = yield from self._with_lag(speed_views.notifications(self.keys, user_id, limit), now)
        return Answer({"user_id": user_id, "items": items}, self._compose(None, lag, now=now))

    def similar(self, content_id: str, *, limit: int) -> Plan[Answer]:
        """The titles most like one title by content, from the published model."""
        version = yield from model_version(self.keys)
        if version is None:
            raise NotFound(NO_MODEL)
        bundle, found = yield from gather(self._bundle(version), similar_titles(self.keys, version, content_id))
        if found is None:
            raise NotFound(f"title {content_id!r} is not in the catalog of model {version}")
        titles = bundle.titles
        return Answer({"content_id": content_id, "model_version": version, "items": [
            {"content_id": c, "title": str(titles[bundle.index[c]]) if c in bundle.index else "", "score": score}
            for c, score in found[:limit]]}, self._model_freshness(bundle, None))

    # --- playback ----------------------------------------------------------------------------------------
    def authorize(self, *, account_id: str, session_id: str, device_type: str) -> Plan[Decision]:
        decision = yield from authorize(self.keys, account_id=account_id, session_id=session_id,
                                        device_type=device_type,
                                        heartbeat_timeout_seconds=self.settings.speed_heartbeat_timeout_seconds,
                                        lease_seconds=self.settings.serving_lease_seconds)
        return decision

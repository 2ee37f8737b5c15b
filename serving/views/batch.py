"""Readers of the batch views the batch layer publishes (``batch_layer.publish``), as of their watermark W.

Each reader resolves the version pointer, then reads the meta's W and the view's hash in one pipeline
(:func:`~warehouse_models.batch_versions.version_hash_plan`): it sees one version whole, old or new, never a
mix. Each is a read plan (:mod:`warehouse_models.redis_plan`, run blocking or on an event loop) returning a
:class:`~warehouse_models.batch_versions.BatchRead`, or None before the first publication; ``read_batch_*`` run
them with a blocking client.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from warehouse_models.batch_versions import BatchRead, version_hash_plan, version_missing
from warehouse_models.marts import DROPOFF_POINTS, dropoff_column
from warehouse_models.metrics.ctr import COUNTS, click_rate, split_fields
from warehouse_models.metrics.engagement import METRICS, split_daily
from warehouse_models.metrics.qoe import QOE_FIELDS
from warehouse_models.metrics.variants import totals_from_hash
from warehouse_models.redis_io import text
from warehouse_models.redis_keys import ContentKind, KeyLayout
from warehouse_models.redis_plan import Command, Plan, run


def batch_user_totals(keys: KeyLayout, user_id: str) -> Plan[BatchRead | None]:
    """A user's totals before W (zeros for a user without events), with W; ``days``: UTC date -> that date's
    totals before W, for the dates with events among the ``DAILY_DAYS`` up to W's."""
    found = yield from version_hash_plan(keys, lambda version: keys.batch_user_totals(version, user_id))
    if found is None:
        return None
    version, watermark, fields = found
    return BatchRead(version, watermark, {**{m: int(fields.get(m, 0)) for m in METRICS},
                                          "days": split_daily(fields)})


def batch_content_totals(keys: KeyLayout, content_id: str) -> Plan[BatchRead | None]:
    """A title's totals before W, with W (``completed_views``/``completion_rate`` None without a duration);
    ``known`` says whether the title had any view before W. ``dropoff``: the share of the views that reached each
    point of the duration, ``[(percent, share)]`` from 0 to 100 % (None without a duration)."""
    found = yield from version_hash_plan(keys, lambda version: keys.batch_content_totals(version, content_id))
    if found is None:
        return None
    version, watermark, fields = found
    completed = fields.get("completed_views")
    rate = fields.get("completion_rate")
    return BatchRead(version, watermark, {
        "known": bool(fields),
        "views": int(fields.get("views", 0)),
        "watch_seconds": float(fields.get("watch_seconds", 0.0)),
        "completed_views": int(completed) if completed is not None else None,
        "completion_rate": float(rate) if rate is not None else None,
        "dropoff": dropoff_curve(fields),
    })


def dropoff_curve(fields: dict[str, str]) -> list[tuple[int, float]] | None:
    """The drop-off points a content hash holds, in percent order; None when it holds none (no duration)."""
    points = [(p, float(fields[dropoff_column(p)])) for p in DROPOFF_POINTS if dropoff_column(p) in fields]
    return points or None


def batch_ctr(keys: KeyLayout, rail_id: str, button_id: str) -> Plan[BatchRead | None]:
    """A rail button's impressions, clicks and rate before W, and per title (``by_content``), with W."""
    found = yield from version_hash_plan(keys, lambda version: keys.batch_ctr(version, rail_id, button_id))
    if found is None:
        return None
    version, watermark, fields = found
    by_content = split_fields(fields)
    totals = {count: sum(v[count] for v in by_content.values()) for count in COUNTS}
    return BatchRead(version, watermark,
                     {**totals, "rate": click_rate(totals["clicks"], totals["impressions"]), "by_content": by_content})


def batch_qoe(keys: KeyLayout, content_id: str, device_type: str, country: str) -> Plan[BatchRead | None]:
    """A slice's QoE sums before W (zeros for a slice without events), with W."""
    found = yield from version_hash_plan(keys, lambda version: keys.batch_qoe(version, content_id, device_type,
                                                                              country))
    if found is None:
        return None
    version, watermark, fields = found
    return BatchRead(version, watermark, {name: int(fields.get(name, 0)) for name in QOE_FIELDS})


def batch_trending_baselines(keys: KeyLayout, kind: ContentKind,
                             titles: Sequence[str] | None = None) -> Plan[BatchRead | None]:
    """The baselines of one kind (content id -> viewers per window), with W: every title's, or only those of
    ``titles`` (one HMGET instead of the whole hash: what a trending answer needs)."""
    if titles is None:
        found = yield from version_hash_plan(keys, lambda version: keys.batch_trending_baselines(version, kind))
        if found is None:
            return None
        version, watermark, fields = found
        return BatchRead(version, watermark, {content: float(value) for content, value in fields.items()})
    (raw,) = yield [Command("GET", keys.batch_pointer())]
    if raw is None:
        return None
    version = text(raw)
    wanted = list(titles)
    watermark, values = yield [Command("HGET", keys.batch_meta(version), "watermark"),
                               Command("HMGET", keys.batch_trending_baselines(version, kind), *wanted)
                               if wanted else Command("PING")]
    if watermark is None:
        raise version_missing(version)
    found_values = values if wanted else []
    return BatchRead(version, int(text(watermark)),
                     {content: float(value) for content, value in zip(wanted, found_values, strict=True)
                      if value is not None})


def read_batch_user_totals(client: redis.Redis, keys: KeyLayout, user_id: str) -> BatchRead | None:
    return run(client, batch_user_totals(keys, user_id))


def read_batch_content_totals(client: redis.Redis, keys: KeyLayout, content_id: str) -> BatchRead | None:
    return run(client, batch_content_totals(keys, content_id))


def read_batch_ctr(client: redis.Redis, keys: KeyLayout, rail_id: str, button_id: str) -> BatchRead | None:
    return run(client, batch_ctr(keys, rail_id, button_id))


def read_batch_qoe(client: redis.Redis, keys: KeyLayout, content_id: str, device_type: str,
                   country: str) -> BatchRead | None:
    return run(client, batch_qoe(keys, content_id, device_type, country))


def read_batch_trending_baselines(client: redis.Redis, keys: KeyLayout, kind: ContentKind) -> BatchRead | None:
    return run(client, batch_trending_baselines(keys, kind))


def batch_variants(keys: KeyLayout) -> Plan[BatchRead | None]:
    """Each recommendation variant's totals over the days before W (variant -> totals), with W."""
    found = yield from version_hash_plan(keys, keys.batch_variants)
    if found is None:
        return None
    version, watermark, fields = found
    return BatchRead(version, watermark, totals_from_hash(fields))

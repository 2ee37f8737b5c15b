"""The publish job: compute every batch view from the gold tables as of W and publish them as one new version.

Each view is all-time totals of the events before W (so the serving layer's ``batch(W) + speed(buckets >= W)``
is the whole count); the views are computed with Spark from ``fact_stream_events`` (and ``dim_content``),
streamed to the driver partition by partition and written by :func:`batch_layer.publish.versioned.publish_version`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from batch_layer.publish import content_totals, ctr, qoe, trending_baselines, user_totals, variants
from batch_layer.publish.versioned import Entry, Publication, publish_version
from batch_layer.silver.job import read_table
from warehouse_models.tables import DIM_CONTENT, FACT_STREAM_EVENTS

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame, SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

VIEW_NAMES: tuple[str, ...] = (user_totals.NAME, content_totals.NAME, ctr.NAME, qoe.NAME, trending_baselines.NAME,
                               variants.NAME)
"""Every published view, in publication order (also the ``rows:<view>`` fields of a version's meta)."""


def view_frames(fact: DataFrame, dim_content: DataFrame, settings: Settings, *,
                watermark: datetime) -> dict[str, DataFrame]:
    """Every view's rows as of W (lazy frames)."""
    return {
        user_totals.NAME: user_totals.user_totals(fact, settings, end=watermark, daily=True),
        content_totals.NAME: content_totals.content_totals(fact, dim_content, end=watermark),
        ctr.NAME: ctr.ctr_totals(fact, settings, end=watermark),
        qoe.NAME: qoe.qoe_totals(qoe.qoe_minutes(fact, settings), end=watermark),
        trending_baselines.NAME: trending_baselines.trending_baselines(fact, settings, end=watermark),
        variants.NAME: variants.variants_totals(fact, settings, end=watermark),
    }


_ENTRIES: dict[str, Callable[[Iterable[Mapping[str, Any]], Any, str], Iterator[Entry]]] = {
    user_totals.NAME: user_totals.entries,
    content_totals.NAME: content_totals.entries,
    ctr.NAME: ctr.entries,
    qoe.NAME: qoe.entries,
    trending_baselines.NAME: trending_baselines.entries,
    variants.NAME: variants.entries,
}


def publish_batch_views(spark: SparkSession, settings: Settings, *, watermark: datetime,
                        client: redis.Redis | None = None, published_at: datetime | None = None,
                        on_chunk: Callable[[str, int], None] | None = None) -> Publication:
    """Compute every batch view as of ``watermark`` from the gold tables and publish them as a new version.

    Args:
        watermark: W (aware, on the hour): every event before it counts, none after.
        client: the Redis client (default: one from the settings).
        published_at: the publication time recorded in the meta (default now).
        on_chunk: progress callback (view, hashes written so far), see :func:`publish_version`.
    """
    if watermark.tzinfo is None:
        raise ValueError(f"{watermark!r} has no time zone; pass an aware UTC time")
    watermark = watermark.astimezone(timezone.utc)
    redis_client = client if client is not None else settings.redis_client()
    keys = settings.keys
    fact = read_table(spark, settings, FACT_STREAM_EVENTS).cache()
    try:
        frames = view_frames(fact, read_table(spark, settings, DIM_CONTENT), settings, watermark=watermark)

        def entries_of(name: str) -> Callable[[str], Iterator[Entry]]:
            # toLocalIterator: one Spark partition at a time in the driver, not the whole view.
            # A Row is read by field name, as the entries functions read a mapping.
            rows = cast("Callable[[], Iterable[Mapping[str, Any]]]", frames[name].toLocalIterator)
            return lambda version: _ENTRIES[name](rows(), keys, version)

        return publish_version(redis_client, keys, {name: entries_of(name) for name in VIEW_NAMES},
                               watermark=int(watermark.timestamp()), published_at=published_at, on_chunk=on_chunk)
    finally:
        fact.unpersist()

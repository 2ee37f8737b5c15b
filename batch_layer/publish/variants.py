"""Recommendation variants' totals over the ``recs_variant_days`` before W, one hash
(:meth:`~warehouse_models.redis_keys.KeyLayout.batch_variants`); the API turns them into rates and intervals with
:func:`warehouse_models.metrics.variants.figures`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from batch_layer.publish.frames import between
from batch_layer.publish.versioned import Entry
from warehouse_models.metrics.variants import TOTALS, parse_variants, variant_totals
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NAME = "variants"


def variants_totals(fact: DataFrame, settings: Settings, *, end: datetime) -> DataFrame:
    start = end - timedelta(days=settings.recs_variant_days)
    return variant_totals(between(fact, "event_timestamp", start=start, end=end),
                          parse_variants(settings.recs_variants), settings.recs_variant_salt)


def entries(rows: Iterable[Mapping[str, Any]], keys: KeyLayout, version: str) -> Iterator[Entry]:
    """Every variant's totals as fields of the one hash."""
    for row in rows:
        yield keys.batch_variants(version), {f"{row['variant']}:{total}": row[total] for total in TOTALS}

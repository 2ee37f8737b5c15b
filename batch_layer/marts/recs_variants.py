"""``mart_recs_variants_daily``: each recommendation variant's CTR, watch time per user and completion per day,
with 95 % intervals, by the definition of :mod:`warehouse_models.metrics.variants`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform
from warehouse_models.marts import MART_RECS_VARIANTS_DAILY
from warehouse_models.metrics.variants import interval_columns, parse_variants, variant_totals

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from warehouse_models.settings import Settings


def mart_recs_variants_daily(fact: DataFrame, settings: Settings) -> DataFrame:
    """Fact rows -> one row per (variant, event date) with any stamped tile, watching user or ended view."""
    totals = variant_totals(fact, parse_variants(settings.recs_variants), settings.recs_variant_salt,
                            keys=("event_date",))
    return conform(interval_columns(totals), MART_RECS_VARIANTS_DAILY)

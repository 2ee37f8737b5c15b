"""``mart_ctr_daily``: impressions, clicks and click-through per button, rail and day.

The rows need the interactions' ``rail_id`` and ``button_id`` (:data:`REQUIRED_COLUMNS`); the transform refuses a
fact frame without them (an older fact table) rather than guess.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform
from warehouse_models.events import EventType
from warehouse_models.marts import MART_CTR_DAILY

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("rail_id", "button_id")
"""Interaction fields the mart groups by."""


class MissingFactColumnsError(ValueError):
    """The fact frame lacks columns a mart needs; the message names them."""


def missing_columns(fact: DataFrame) -> list[str]:
    """The :data:`REQUIRED_COLUMNS` the frame lacks."""
    return [name for name in REQUIRED_COLUMNS if name not in fact.columns]


def mart_ctr_daily(fact: DataFrame) -> DataFrame:
    """Fact rows (with ``rail_id`` and ``button_id``) -> one row per (button, rail, event date) with impressions
    or clicks; ``ctr`` is clicks / impressions, null without impressions.

    Raises:
        MissingFactColumnsError: the frame has no ``rail_id`` or ``button_id``.
    """
    from pyspark.sql import functions as F

    missing = missing_columns(fact)
    if missing:
        raise MissingFactColumnsError(f"{MART_CTR_DAILY.name} needs fact columns {missing}")
    kind = F.col("event_type")
    out = (
        fact.where(kind.isin(EventType.IMPRESSION.value, EventType.CLICK.value)
                   & F.col("rail_id").isNotNull() & F.col("button_id").isNotNull())
        .groupBy("button_id", "rail_id", "event_date")
        .agg(F.count(F.when(kind == EventType.IMPRESSION.value, F.lit(1))).alias("impressions"),
             F.count(F.when(kind == EventType.CLICK.value, F.lit(1))).alias("clicks"))
        .withColumn("ctr", F.when(F.col("impressions") > 0, F.col("clicks") / F.col("impressions")))
    )
    return conform(out, MART_CTR_DAILY)

"""``mart_qoe_hourly``: QoE per title, device type, country and hour, with the speed layer's own functions.

The fact rows go through :func:`warehouse_models.metrics.qoe.qoe_rows` on a batch frame (the stream's rules as Spark
aggregations, so session outcomes are judged exactly as there), its minute sums are added per hour, and the
ratios are :data:`warehouse_models.metrics.qoe.QOE_RATIOS` (the formulas of ``docs/qoe.md``) as Spark columns
(:func:`warehouse_models.metrics.qoe.qoe_ratio_columns`): the values ``qoe_metrics`` gives, with no Python worker.

The step reads envelope fields the fact table does not declare (:data:`OPTIONAL_FACT_COLUMNS`): they are taken
from the frame when it has them and are null otherwise. Without ``player_state`` a heartbeat is playing
exactly when the fact gives it watch seconds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.marts.sessions import conform
from warehouse_models.events import FIELDS_BY_NAME, EventType
from warehouse_models.marts import MART_QOE_HOURLY
from warehouse_models.metrics.qoe import EVENT_COLUMNS, QOE_FIELDS, SLICE_COLUMNS, qoe_ratio_columns, qoe_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

OPTIONAL_FACT_COLUMNS: tuple[str, ...] = ("previous_bitrate_kbps", "error_fatal", "error_code")
"""Without them upshifts and downshifts stay 0 and no fatal error is seen (so no start failures and no
failures after start; a session that ended in a fatal error counts as an exit before start if it never
started)."""

def qoe_events(fact: DataFrame) -> DataFrame:
    """Fact rows as the envelope columns :func:`warehouse_models.metrics.qoe.qoe_rows` reads (:data:`EVENT_COLUMNS`)."""
    from pyspark.sql import functions as F

    derived: dict[str, SparkColumn] = {}
    if "player_state" not in fact.columns:
        playing = ((F.col("event_type") == EventType.HEARTBEAT.value)
                   & (F.coalesce(F.col("watch_seconds"), F.lit(0.0)) > 0))
        derived["player_state"] = F.when(playing, F.lit("playing"))
    for name in OPTIONAL_FACT_COLUMNS:
        if name not in fact.columns:
            derived[name] = F.lit(None).cast(FIELDS_BY_NAME[name].column.type)
    return fact.select(*(derived[name].alias(name) if name in derived else F.col(name) for name in EVENT_COLUMNS))


def mart_qoe_hourly(fact: DataFrame, settings: Settings) -> DataFrame:
    """Fact rows -> one row per (content, device type, country, event hour) (:data:`MART_QOE_HOURLY`).

    Args:
        fact: fact rows; sessions still open at the frame's watermark (newest event time minus the allowed
            lateness) are not judged yet, as in the stream, so give it the hours after the ones reported.
        settings: the speed layer's allowed lateness and heartbeat timeout, so both layers judge alike.
    """
    from pyspark.sql import functions as F

    missing = [name for name in OPTIONAL_FACT_COLUMNS if name not in fact.columns]
    if missing:
        logger.info("%s: fact frame has no %s; those sums stay 0", MART_QOE_HOURLY.name, missing)
    minutes = qoe_rows(qoe_events(fact), settings)
    hourly = (minutes.groupBy(*SLICE_COLUMNS, F.date_trunc("hour", "window_start").alias("event_hour"))
              .agg(*(F.sum(name).cast("long").alias(name) for name in QOE_FIELDS))
              .withColumn("event_date", F.to_date("event_hour")))
    return conform(hourly.select("*", *qoe_ratio_columns()), MART_QOE_HOURLY)

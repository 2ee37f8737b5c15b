"""The content dimension: one row per title or live channel, from its newest ``content_upsert`` by event time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.bronze.transform import conform
from batch_layer.silver.transform import KAFKA_ORDER, deduplicate
from warehouse_models.events import EventType
from warehouse_models.tables import DIM_CONTENT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def content_records(catalog: DataFrame) -> DataFrame:
    """The validated ``content_upsert`` rows of the bronze catalog, one per ``event_id``."""
    from pyspark.sql import functions as F

    valid = catalog.where(F.col("parse_error").isNull()
                          & (F.col("event_type") == EventType.CONTENT_UPSERT.value)
                          & F.col("content_id").isNotNull())
    return deduplicate(valid)


def dim_content(catalog: DataFrame) -> DataFrame:
    """One row per ``content_id``: its newest record by event time (on a tie, the one Kafka got last).

    Args:
        catalog: rows of the bronze catalog table (all of them: the dimension is rebuilt whole).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    newest = Window.partitionBy("content_id").orderBy(
        F.col("event_timestamp").desc(), *[F.col(c).desc_nulls_last() for c in KAFKA_ORDER]
    )
    rows = (
        content_records(catalog).withColumn("_rank", F.row_number().over(newest)).where(F.col("_rank") == 1)
        .withColumn("updated_at", F.col("event_timestamp"))
    )
    return conform(rows, DIM_CONTENT)

"""The user dimension as SCD type 2: one row per version of a profile, from its ``user_upsert`` records.

Records of a user are taken in event-time order (on equal times the one Kafka got last wins). A record whose
attributes (:data:`USER_ATTRIBUTES`: plan, stream limit, name, ...) differ from the current version's opens a
new version ``valid_from`` its event time and closes the previous one (``valid_to``); a record that repeats the
current attributes opens nothing. ``user_key`` is a hash of ``user_id`` and ``valid_from``, so a rebuild from
the same records gives the same keys and facts can be joined to the version valid at their event time.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from batch_layer.bronze.transform import conform
from batch_layer.silver.transform import KAFKA_ORDER, deduplicate
from warehouse_models.events import EventType
from warehouse_models.tables import DIM_USERS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

USER_ATTRIBUTES: tuple[str, ...] = (
    "account_id", "user_name", "age_group", "location_country", "subscription_type", "max_streams", "join_date",
    "preferences",
)
"""The attributes a version holds: a change of any of them opens a new version."""

_KEY_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"
_KEY_LENGTH = 32


def user_key(user_id: str, valid_from: datetime) -> str:
    """The surrogate key of a version: the first 32 hex digits of SHA-256 of ``<user_id>|<valid_from UTC>``."""
    text = f"{user_id}|{valid_from.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')}"
    return hashlib.sha256(text.encode()).hexdigest()[:_KEY_LENGTH]


def user_key_column(user_id: SparkColumn, valid_from: SparkColumn) -> SparkColumn:
    """:func:`user_key` as a Spark expression (the session time zone must be UTC, as the project sets it)."""
    from pyspark.sql import functions as F

    text = F.concat_ws("|", user_id, F.date_format(valid_from, _KEY_TIME_FORMAT))
    return F.substring(F.sha2(text, 256), 1, _KEY_LENGTH)


def user_records(catalog: DataFrame) -> DataFrame:
    """The validated ``user_upsert`` rows of the bronze catalog, one per ``event_id``."""
    from pyspark.sql import functions as F

    valid = catalog.where(F.col("parse_error").isNull()
                          & (F.col("event_type") == EventType.USER_UPSERT.value)
                          & F.col("user_id").isNotNull())
    return deduplicate(valid)


def dim_users(catalog: DataFrame) -> DataFrame:
    """Every version of every user (SCD type 2) from all catalog records.

    Args:
        catalog: rows of the bronze catalog table (all of them: the dimension is rebuilt whole).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Two records at one instant would open a version that lasts no time; the later one in Kafka stands.
    same_instant = Window.partitionBy("user_id", "event_timestamp").orderBy(
        *[F.col(c).desc_nulls_last() for c in KAFKA_ORDER]
    )
    by_time = Window.partitionBy("user_id").orderBy("event_timestamp")
    attributes = F.to_json(F.struct(*[F.col(c) for c in USER_ATTRIBUTES]))
    versions = (
        user_records(catalog)
        .withColumn("_rank", F.row_number().over(same_instant)).where(F.col("_rank") == 1)
        .withColumn("_attributes", attributes)
        .withColumn("_previous", F.lag("_attributes").over(by_time))
        .where(F.col("_previous").isNull() | (F.col("_previous") != F.col("_attributes")))
        .withColumn("valid_from", F.col("event_timestamp"))
        .withColumn("valid_to", F.lead("valid_from").over(by_time))
    )
    rows = versions.withColumns({
        "is_current": F.col("valid_to").isNull(),
        "user_key": user_key_column(F.col("user_id"), F.col("valid_from")),
    })
    return conform(rows, DIM_USERS)

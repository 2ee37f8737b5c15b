"""A Kafka record as every reader of the event topics sees it: the same columns in bronze and the speed layer.

:func:`kafka_records` turns the rows of Spark's Kafka source into the record columns ``kafka_topic``,
``kafka_partition``, ``kafka_offset``, ``kafka_timestamp``, ``kafka_key`` and ``raw_value``: bronze lands them
as its metadata columns, the speed layer parses and checks ``raw_value`` and keys dead letters by the
coordinates. One definition, so a record's coordinates and text are the same in both layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

KAFKA_RECORD_COLUMNS: tuple[str, ...] = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp",
                                         "kafka_key", "raw_value")
"""The columns :func:`kafka_records` gives, in order."""


def kafka_records(df: DataFrame) -> DataFrame:
    """Kafka source rows as the record columns: topic, partition, offset, timestamp, key, raw value.

    ``raw_value`` is the value's bytes read as a string; bytes that are not UTF-8 are left as they are here, for
    the readers to refuse (the validator sees the exact bytes) and to make valid where they store the text.
    """
    from pyspark.sql import functions as F

    return df.select(
        F.col("topic").alias("kafka_topic"),
        F.col("partition").cast("int").alias("kafka_partition"),
        F.col("offset").cast("long").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("string").alias("kafka_key"),
        F.col("value").cast("string").alias("raw_value"),
    )

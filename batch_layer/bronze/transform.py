"""Pure DataFrame steps from Kafka records to bronze rows; each works on streaming and batch DataFrames.

The steps, in the order the bronze job applies them::

    kafka_records -> parse_envelope   -> with_ingest_columns -> conform   (playback, interactions, catalog, derived)
    kafka_records -> dead_letter_rows -> with_ingest_columns -> conform   (dead-letter)

Validation runs the one shared validator, :func:`warehouse_models.events.decode_and_validate`, in a pandas
UDF over the record's bytes, so ``parse_error`` is word for word the reason the collector would give. Event
time is judged against the Kafka record timestamp (when the broker got it), not the wall clock of the job,
so replaying a topic next month gives the same verdicts.

The typed envelope columns come from Spark's ``from_json`` with the envelope schema and are kept as parsed
even when the record failed validation: silver reads only ``parse_error IS NULL`` rows, and the parsed
``event_id``/``event_type`` of a refused record help whoever investigates it (``raw_value`` has the rest).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from warehouse_models.dead_letter import DEAD_LETTER_COLUMNS, EMPTY_RECORD_REASON
from warehouse_models.events import ENVELOPE_COLUMNS, decode_and_validate
from warehouse_models.kafka_records import kafka_records
from warehouse_models.tables import DEAD_LETTER, TableSpec
from warehouse_models.types import Column, spark_ddl

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

_ENVELOPE_NAMES: frozenset[str] = frozenset(c.name for c in ENVELOPE_COLUMNS)

UNREADABLE_DEAD_LETTER_REASON = "dead-letter record is not a valid dead-letter JSON object"
"""The reason bronze gives a dead-letter topic record it cannot read (the record is still kept)."""


def _nullable_ddl(columns: tuple[Column, ...]) -> str:
    # from_json yields null for whatever is missing; declaring NOT NULL here would only mislead.
    return spark_ddl(tuple(Column(c.name, c.type, c.doc, nullable=True) for c in columns))


def validation_reason(raw: pd.Series, received: pd.Series) -> pd.Series:
    """The validator's reason for each raw value (bytes) judged at its receive time; None when it is valid."""
    times = pd.to_datetime(received, utc=True)
    reasons = [
        EMPTY_RECORD_REASON if value is None else decode_and_validate(bytes(value), now=at.to_pydatetime()).reason
        for value, at in zip(raw, times, strict=True)
    ]
    return pd.Series(reasons, index=raw.index, dtype=object)


def _validation_udf():  # -> pyspark UserDefinedFunction
    from pyspark.sql.functions import pandas_udf

    return pandas_udf(validation_reason, "string")


def _valid_text(raw: SparkColumn) -> SparkColumn:
    """The value with any bytes that are not UTF-8 replaced, so Parquet and Arrow readers accept it."""
    from pyspark.sql import functions as F

    return F.when(F.isnull(raw), raw).otherwise(F.make_valid_utf8(raw))


def parse_envelope(df: DataFrame) -> DataFrame:
    """Add ``parse_error`` (the shared validator's reason, null when valid) and the typed envelope columns.

    Expects the columns of :func:`kafka_records`. The validator sees the exact bytes Kafka held (a value that
    is not UTF-8 is refused just as the collector refuses it); ``raw_value`` is then made valid UTF-8.
    """
    from pyspark.sql import functions as F

    reason = _validation_udf()(F.col("raw_value").cast("binary"), F.col("kafka_timestamp"))
    clean = _valid_text(F.col("raw_value"))
    parsed = F.from_json(clean, _nullable_ddl(ENVELOPE_COLUMNS))
    others = [c for c in df.columns if c != "raw_value" and c not in _ENVELOPE_NAMES and c != "parse_error"]
    return (
        df.select(*others, clean.alias("raw_value"), reason.alias("parse_error"), parsed.alias("_envelope"))
        .select(*others, "raw_value", "parse_error",
                *[F.col(f"_envelope.{c.name}").alias(c.name) for c in ENVELOPE_COLUMNS])
    )


def dead_letter_rows(df: DataFrame) -> DataFrame:
    """Parse dead-letter topic records into the dead-letter columns; an unreadable one is kept, not dropped.

    Expects the columns of :func:`kafka_records`. A record that is not a dead-letter JSON object gets
    :data:`UNREADABLE_DEAD_LETTER_REASON`, its Kafka coordinates as id and source, and the Kafka timestamp
    as ``received_at``, so the required columns are never null.
    """
    from pyspark.sql import functions as F

    clean = _valid_text(F.col("raw_value"))
    parsed = F.from_json(clean, _nullable_ddl(DEAD_LETTER_COLUMNS))
    coordinates = F.concat_ws("/", F.col("kafka_topic"), F.col("kafka_partition").cast("string"),
                              F.col("kafka_offset").cast("string"))
    defaults: dict[str, SparkColumn] = {
        "dead_letter_id": coordinates,
        "reason": F.lit(UNREADABLE_DEAD_LETTER_REASON),
        "stage": F.lit("unknown"),
        "source": coordinates,
        "raw_encoding": F.lit("utf-8"),
        "received_at": F.col("kafka_timestamp"),
    }
    unreadable = F.col("_dead_letter").isNull() | F.col("_dead_letter.reason").isNull()
    fields = []
    for column in DEAD_LETTER_COLUMNS:
        value = F.col(f"_dead_letter.{column.name}")
        if column.name == "reason":
            value = F.when(unreadable, defaults["reason"]).otherwise(value)
        elif column.name == "raw_payload":
            value = F.when(unreadable, F.col("raw_value")).otherwise(value)
        elif column.name in defaults:
            value = F.coalesce(value, defaults[column.name])
        fields.append(value.alias(column.name))
    others = [c for c in df.columns if c != "raw_value"]
    return (
        df.select(*others, clean.alias("raw_value"), parsed.alias("_dead_letter"))
        .select(*others, "raw_value", *fields)
    )


def with_ingest_columns(df: DataFrame) -> DataFrame:
    """Add ``ingested_at`` (the micro-batch's processing time) and ``ingest_date``, the partition column.

    In a streaming query ``current_timestamp()`` is the batch timestamp kept in the offset log, so a batch
    re-run after a crash gets the same values (and lands in the same partition).
    """
    from pyspark.sql import functions as F

    return df.withColumn("ingested_at", F.current_timestamp()).withColumn(
        "ingest_date", F.to_date(F.col("ingested_at"))
    )


def conform(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Select the table's columns in declared order, cast to declared types, so every writer agrees."""
    from pyspark.sql import functions as F

    missing = [c.name for c in spec.columns if c.name not in df.columns]
    if missing:
        raise ValueError(f"{spec.name}: the frame lacks columns {missing}")
    # The neutral type names ("long", "array<string>") are also Spark type strings.
    return df.select(*[F.col(c.name).cast(c.type).alias(c.name) for c in spec.columns])


def bronze_frame(kafka_df: DataFrame, spec: TableSpec) -> DataFrame:
    """The whole chain from a Kafka source DataFrame to the rows of one bronze table."""
    records = kafka_records(kafka_df)
    rows = dead_letter_rows(records) if spec.name == DEAD_LETTER.name else parse_envelope(records)
    return conform(with_ingest_columns(rows), spec)

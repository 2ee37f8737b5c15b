"""The speed layer's input: Kafka records parsed with the shared envelope, split into valid and malformed.

Every view reads :func:`valid_events`: the envelope columns (names and types from
``warehouse_models.events``), ``event_timestamp`` as a UTC timestamp (event time), plus ``kafka_timestamp``.

One verdict. The views run :func:`envelope_violation`: the record's text and its Kafka timestamp go to one JVM
call, ``reelytics.speed.EnvelopeViolation`` (``speed_layer/jvm/src``), which reads the JSON as Python's parser
does and applies the rules of ``warehouse_models.events`` (``envelope_rules()``, written into its jar): required and
allowed fields per event type, JSON types, choices, ranges, lengths, patterns, the one timestamp form, fields outside
the envelope, text after the object, the event-time window against the Kafka timestamp. Bytes that are not UTF-8
are refused before it. The collector, bronze and this check accept and refuse the same records
(``tests/spark/test_speed_source.py`` judges a corpus that breaks every field of every event type all four ways).
The dead-letter view runs the validator on the refused records, so a dead letter's reason is word for word the
collector's. The typed envelope columns come from one JSON parse into VARIANTs, so a value keeps its JSON type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from warehouse_models.events import (
    ENVELOPE_COLUMNS,
    ENVELOPE_FIELDS,
    TopicKind,
)
from warehouse_models.kafka_records import kafka_records
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.column import Column as SparkColumn

ENVELOPE_NAMES: tuple[str, ...] = tuple(c.name for c in ENVELOPE_COLUMNS)


# --- reading -----------------------------------------------------------------------------------------------


def kafka_stream(spark: SparkSession, settings: Settings, kinds: Sequence[TopicKind], *,
                 starting_offsets: str = "earliest") -> DataFrame:
    """A streaming DataFrame of the Kafka records of the given topic kinds (the Kafka source's columns)."""
    names = ",".join(settings.topics.for_kind(kind).name for kind in kinds)
    reader = (
        spark.readStream.format("kafka")
        .options(**settings.spark_kafka_source_options())
        .option("subscribe", names)
        .option("startingOffsets", starting_offsets)
        # A topic deleted or compacted under a running query must not stop the views; the batch layer is the
        # source of truth for whatever the speed layer could not read.
        .option("failOnDataLoss", "false")
    )
    if settings.speed_kafka_max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(settings.speed_kafka_max_offsets_per_trigger))
    return reader.load()


_VALUES = "_values"


def _values_ddl() -> str:
    """Every envelope field as a VARIANT: the JSON value as sent, its JSON type kept for the typed columns."""
    return ", ".join(f"`{name}` VARIANT" for name in ENVELOPE_NAMES)


def _spark_type(kind: str) -> str:
    return {"string": "string", "int": "int", "long": "bigint", "double": "double", "boolean": "boolean",
            "timestamp": "timestamp", "date": "date", "array<string>": "array<string>"}[kind]


def parse_raw(frame: DataFrame) -> DataFrame:
    """A frame with ``raw_value`` (the record as text) -> the same columns plus the typed envelope columns.

    One JSON parse into VARIANTs, then each field cast to its column's type (null when it cannot be); a field given
    twice counts with its last value, as Python's and orjson's parsers do. Whether the record may count is
    :func:`envelope_violation`'s verdict, not these columns'.
    """
    from pyspark.sql import functions as F

    staged = frame.select("*", F.from_json(F.col("raw_value"), _values_ddl(), {"allowSingleQuotes": "false"})
                          .alias(_VALUES))
    typed = [F.expr(f"try_variant_get({_VALUES}.`{spec.name}`, '$', '{_spark_type(spec.column.type)}')").alias(
        spec.name) for spec in ENVELOPE_FIELDS]
    return staged.select(*frame.columns, *typed)


def parse_records(df: DataFrame) -> DataFrame:
    """Kafka source rows -> Kafka coordinates, ``raw_value``, the typed envelope columns and ``violation``.

    ``violation`` is null for a record the views may count, otherwise a short reason (see the module docs).
    """
    from pyspark.sql import functions as F

    register_envelope_check(df.sparkSession)
    records = kafka_records(df)
    return parse_raw(records).withColumn("violation", envelope_violation(received=F.col("kafka_timestamp")))


ENVELOPE_CHECK = "reelytics_envelope_violation"
"""The SQL name :func:`register_envelope_check` gives ``reelytics.speed.EnvelopeViolation``."""

NOT_AN_ENVELOPE = "not an envelope (not one JSON object)"


def register_envelope_check(spark: SparkSession) -> None:
    """Make :data:`ENVELOPE_CHECK` callable in ``spark``'s SQL (the class is in Reelytics' jar, see ``infra.jvm``)."""
    from pyspark.sql.types import StringType

    from infra.process import ServiceError

    if spark.catalog.functionExists(ENVELOPE_CHECK):
        return
    try:
        spark.udf.registerJavaFunction(ENVELOPE_CHECK, "reelytics.speed.EnvelopeViolation", StringType())
    except Exception as exc:  # py4j's error for a class the session did not load
        raise ServiceError("the speed layer's envelope check needs Reelytics' Spark classes "
                           "(reelytics.speed.EnvelopeViolation), and this Spark session did not load them: run "
                           "`bash infra/install.sh` (it compiles them with javac), or `python -m infra.jvm`, then "
                           f"restart the speed layer ({type(exc).__name__})") from exc


def envelope_violation(*, received: SparkColumn) -> SparkColumn:
    """A string column: null when ``raw_value`` passes the envelope, else the first failed check (``<field>: ...``
    when a field is at fault). Needs :func:`register_envelope_check` on the session.

    The same verdict as the validator the collector and bronze run (``warehouse_models.events.decode_and_validate``)
    on every record: JSON that is not one object (or not UTF-8), fields outside the envelope, a value of the wrong
    JSON type, timestamps outside the one form the envelope takes, and every per-field rule.

    Args:
        received: when the record was received (Kafka's timestamp); event time is judged against it, as the
            collector judges it against its receive time.
    """
    from pyspark.sql import functions as F

    raw = F.col("raw_value")
    return (F.when(raw.isNull() | ~F.expr("is_valid_utf8(raw_value)"), F.lit(NOT_AN_ENVELOPE))
            .otherwise(F.call_function(ENVELOPE_CHECK, raw, F.unix_micros(received))))


DEDUPLICATED_TOPICS: tuple[TopicKind, ...] = (TopicKind.PLAYBACK, TopicKind.INTERACTIONS, TopicKind.DERIVED)
"""The topics whose events are counted once per ``event_id``. Catalog upserts are not: each sets a whole row
(a re-sent one changes nothing), and its event time is the time of a catalog change, often long past."""

_DEDUPE_TIME = "_dedupe_time"
_DEDUPE_KEY = "_dedupe_key"


def deduplicated(parsed: DataFrame, settings: Settings) -> DataFrame:
    """The parsed records of a streaming query with every re-sent event (same ``event_id``) after its first
    dropped, within the allowed lateness: Spark state (``dropDuplicatesWithinWatermark``, RocksDB) keyed by event
    id, kept for ``speed_allowed_lateness_seconds`` of event time, as the batch layer keeps each id once.

    Only the valid events of :data:`DEDUPLICATED_TOPICS` have an event time here; refused records (keyed by
    their Kafka coordinates, for the dead-letter view) and catalog upserts pass with none, so they neither move
    the watermark nor count as late. An event older than the watermark (the newest event time of earlier
    micro-batches less the allowed lateness) is dropped before the views, as the additive views' own cut-off
    would leave it to the batch layer; the progress reports how many (``late_rows_before_views``).
    """
    from pyspark.sql import functions as F

    names = sorted(settings.topics.for_kind(kind).name for kind in DEDUPLICATED_TOPICS)
    counted = F.col("violation").isNull() & F.col("kafka_topic").isin(names)
    coordinates = F.concat_ws("/", F.col("kafka_topic"), F.col("kafka_partition").cast("string"),
                              F.col("kafka_offset").cast("string"))
    return (parsed
            .withColumn(_DEDUPE_TIME, F.when(counted, F.col("event_timestamp")))
            .withColumn(_DEDUPE_KEY, F.when(counted, F.col("event_id")).otherwise(F.concat(F.lit("@"), coordinates)))
            .withWatermark(_DEDUPE_TIME, f"{settings.speed_allowed_lateness_seconds} seconds")
            .dropDuplicatesWithinWatermark([_DEDUPE_KEY])
            .drop(_DEDUPE_TIME, _DEDUPE_KEY))


def valid_events(parsed: DataFrame) -> DataFrame:
    """The envelope columns (and ``kafka_timestamp``) of the records that pass :func:`envelope_violation`."""
    from pyspark.sql import functions as F

    return parsed.where(F.col("violation").isNull()).select(*ENVELOPE_NAMES, "kafka_timestamp")


def events_frame(spark: SparkSession, events: Iterable[Mapping[str, Any]]) -> DataFrame:
    """A batch DataFrame of wire-form events (dicts as the simulator yields them) with the envelope columns.

    Parsed by the same ``from_json`` as the stream, so a unit test sees exactly what a view sees in production;
    ``kafka_timestamp`` is the event time (as if each event reached Kafka at once).
    """
    from pyspark.sql import functions as F

    lines = [(json.dumps(dict(event)),) for event in events]
    raw = spark.createDataFrame(lines, "raw_value STRING")
    return (parse_raw(raw).drop("raw_value")
            .withColumn("kafka_timestamp", F.col("event_timestamp")))

"""The speed layer's input: Kafka records parsed with the shared envelope, split into valid and malformed.

Every view reads :func:`valid_events`: the envelope columns (names and types from
``warehouse_models.events``), ``event_timestamp`` as a UTC timestamp (event time), plus ``kafka_timestamp``.

Two checks, one definition. The views run :func:`envelope_violation`, a Spark SQL expression generated from the
same field specs the collector's validator uses (required per event type, allowed per event type, choices,
ranges, lengths, patterns, the event-time window), because a Python check per record per view would cost more
than the views themselves. The dead-letter query runs the validator itself
(:func:`batch_layer.bronze.transform.parse_envelope`), so a dead letter's reason is word for word the
collector's. The two agree on everything the collector can send; they differ only on what ``from_json`` cannot
see: a field of the wrong JSON type that is optional is read as absent by the views (the dead-letter query
still refuses the record), and fields outside the envelope are ignored by the views.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from batch_layer.bronze.transform import kafka_records
from warehouse_models.events import (
    ENVELOPE_COLUMNS,
    ENVELOPE_FIELDS,
    MAX_CLOCK_SKEW,
    MAX_EVENT_AGE,
    SUPPORTED_SCHEMA_VERSIONS,
    EventType,
    FieldSpec,
    TopicKind,
)
from warehouse_models.settings import Settings
from warehouse_models.types import Column, spark_ddl

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.column import Column as SparkColumn

ENVELOPE_NAMES: tuple[str, ...] = tuple(c.name for c in ENVELOPE_COLUMNS)


def envelope_ddl() -> str:
    """The envelope as a Spark DDL schema, every column nullable (``from_json`` yields null for what is missing)."""
    return spark_ddl(tuple(Column(c.name, c.type, c.doc, nullable=True) for c in ENVELOPE_COLUMNS))


# --- reading -----------------------------------------------------------------------------------------------


def kafka_stream(spark: SparkSession, settings: Settings, kinds: Sequence[TopicKind], *,
                 starting_offsets: str = "earliest") -> DataFrame:
    """A streaming DataFrame of the Kafka records of the given topic kinds (the Kafka source's columns)."""
    names = ",".join(settings.topics.for_kind(kind).name for kind in kinds)
    reader = (
        spark.readStream.format("kafka")
        .options(**settings.spark_kafka_options())
        .option("subscribe", names)
        .option("startingOffsets", starting_offsets)
        # A topic deleted or compacted under a running query must not stop the views; the batch layer is the
        # source of truth for whatever the speed layer could not read.
        .option("failOnDataLoss", "false")
    )
    if settings.speed_kafka_max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(settings.speed_kafka_max_offsets_per_trigger))
    return reader.load()


def parse_records(df: DataFrame) -> DataFrame:
    """Kafka source rows -> Kafka coordinates, ``raw_value``, the typed envelope columns and ``violation``.

    ``violation`` is null for a record the views may count, otherwise a short reason (see the module docs).
    """
    from pyspark.sql import functions as F

    records = kafka_records(df)
    parsed = F.from_json(F.col("raw_value"), envelope_ddl())
    others = [c for c in records.columns if c != "raw_value"]
    rows = records.select(*others, "raw_value", parsed.alias("_envelope")).select(
        *others, "raw_value", *[F.col(f"_envelope.{name}").alias(name) for name in ENVELOPE_NAMES])
    return rows.withColumn("violation", kafka_violation())


_KAFKA_VIOLATION: dict[int, SparkColumn] = {}


def kafka_violation() -> SparkColumn:
    """:func:`envelope_violation` judged against ``kafka_timestamp``, built once per process.

    Building its 139 checks takes hundreds of calls into the JVM, more than parsing a small micro-batch: the
    expression is unresolved and immutable, so every micro-batch reuses it (keyed by the JVM gateway, which a
    restarted Spark session in the same process keeps).
    """
    from pyspark import SparkContext
    from pyspark.sql import functions as F

    key = id(SparkContext._gateway)
    if key not in _KAFKA_VIOLATION:
        _KAFKA_VIOLATION.clear()
        _KAFKA_VIOLATION[key] = envelope_violation(received=F.col("kafka_timestamp"))
    return _KAFKA_VIOLATION[key]


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
    parsed = F.from_json(F.col("raw_value"), envelope_ddl())
    return (raw.select(parsed.alias("_e"))
            .select(*[F.col(f"_e.{name}").alias(name) for name in ENVELOPE_NAMES])
            .withColumn("kafka_timestamp", F.col("event_timestamp")))


# --- the envelope as a Spark expression ------------------------------------------------------------------


def _types_sql(types: Iterable[EventType]) -> list[str]:
    return sorted(t.value for t in types)


def _field_violation(spec: FieldSpec) -> list[tuple[SparkColumn, str]]:
    """(condition that is true when the field is wrong, reason) pairs for one field, in checking order."""
    from pyspark.sql import functions as F

    col = F.col(spec.name)
    event_type = F.col("event_type")
    checks: list[tuple[SparkColumn, str]] = []
    all_types = set(EventType)
    if set(spec.allowed_for) != all_types:
        checks.append((col.isNotNull() & ~event_type.isin(_types_sql(spec.allowed_for)),
                       f"{spec.name}: does not belong on this event type"))
    if spec.max_length is not None:
        checks.append((F.length(col) > spec.max_length, f"{spec.name}: longer than {spec.max_length} characters"))
    if spec.choices is not None:
        checks.append((col.isNotNull() & ~col.isin(list(spec.choices)), f"{spec.name}: not one of the choices"))
    if spec.pattern is not None:
        checks.append((col.isNotNull() & ~col.rlike(spec.pattern.pattern), f"{spec.name}: has characters not allowed"))
    if spec.minimum is not None:
        checks.append((col < F.lit(spec.minimum), f"{spec.name}: below the minimum {spec.minimum:g}"))
    if spec.maximum is not None:
        checks.append((col > F.lit(spec.maximum), f"{spec.name}: above the maximum {spec.maximum:g}"))
    if spec.column.type == "double":
        checks.append((F.isnan(col), f"{spec.name}: must be a finite number"))
    if spec.required_for and spec.name not in ("event_id", "schema_version", "event_type", "event_timestamp"):
        checks.append((col.isNull() & event_type.isin(_types_sql(spec.required_for)),
                       f"{spec.name}: is required on this event type"))
    return checks


def envelope_violation(*, received: SparkColumn) -> SparkColumn:
    """A string column: null when the row's envelope columns pass every check, else the first failed check.

    Args:
        received: when the record was received (Kafka's timestamp); event time is judged against it, as the
            collector judges it against its receive time.
    """
    from pyspark.sql import functions as F

    checks: list[tuple[SparkColumn, str]] = [
        (F.col("event_id").isNull(), "not an envelope (unreadable JSON or no event_id)"),
        (F.col("schema_version").isNull() | ~F.col("schema_version").isin(sorted(SUPPORTED_SCHEMA_VERSIONS)),
         "schema_version: missing or not supported"),
        (F.col("event_type").isNull() | ~F.col("event_type").isin(_types_sql(EventType)),
         "event_type: missing or not a known event type"),
        (F.col("event_timestamp").isNull(), "event_timestamp: missing or not a timestamp"),
        (F.col("event_timestamp") > received + F.expr(f"INTERVAL {int(MAX_CLOCK_SKEW.total_seconds())} SECONDS"),
         "event_timestamp: too far in the future"),
        (F.col("event_timestamp") < received - F.expr(f"INTERVAL {int(MAX_EVENT_AGE.total_seconds())} SECONDS"),
         "event_timestamp: too far in the past"),
    ]
    for spec in ENVELOPE_FIELDS:
        checks.extend(_field_violation(spec))
    # One CASE WHEN with a branch per check (the first true one names the reason; a null condition is not
    # true): flat, so Spark analyses and compiles it in a fraction of the time a CASE nested 139 deep takes.
    (condition, reason), *rest = checks
    expr = F.when(condition, F.lit(reason))
    for condition, reason in rest:
        expr = expr.when(condition, F.lit(reason))
    return expr


"""The speed layer's input: Kafka records parsed with the shared envelope, split into valid and malformed.

Every view reads :func:`valid_events`: the envelope columns (names and types from
``warehouse_models.events``), ``event_timestamp`` as a UTC timestamp (event time), plus ``kafka_timestamp``.

One verdict. The views run :func:`envelope_violation`, a Spark SQL expression generated from the same field
specs the collector's validator uses (required and allowed fields per event type, choices, ranges, lengths,
patterns, the event-time window), because a Python check per record would cost more than the views themselves.
Each record is parsed once into VARIANTs, so the check sees what the validator sees: each value's JSON type (a
number sent for a string id, a string for a number), fields outside the envelope, text after the object, bytes
that are not UTF-8, timestamps outside the one form the envelope takes. The collector, bronze and this check
accept and refuse the same records (``tests/spark/test_speed_source.py`` judges a corpus that breaks every field
of every event type all four ways). The dead-letter view runs the validator on the refused records, so a dead
letter's reason is word for word the collector's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from warehouse_models.events import (
    ENVELOPE_COLUMNS,
    ENVELOPE_FIELDS,
    MAX_CLOCK_SKEW,
    MAX_EVENT_AGE,
    MAX_STRING_LENGTH,
    SUPPORTED_SCHEMA_VERSIONS,
    EventType,
    FieldSpec,
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
_KEYS = "_keys"
_SHAPE = "_shape"


def _values_ddl() -> str:
    """Every envelope field as a VARIANT: the JSON value as sent, its JSON type kept for the checks."""
    return ", ".join(f"`{name}` VARIANT" for name in ENVELOPE_NAMES)


def _spark_type(kind: str) -> str:
    return {"string": "string", "int": "int", "long": "bigint", "double": "double", "boolean": "boolean",
            "timestamp": "timestamp", "date": "date", "array<string>": "array<string>"}[kind]


def parse_raw(frame: DataFrame) -> DataFrame:
    """A frame with ``raw_value`` (the record as text) -> the same columns plus the typed envelope columns and
    the helper columns :func:`envelope_violation` reads (``_values``, ``_keys``, ``_shape``; drop them after).

    One JSON parse into VARIANTs keeps each field's JSON type (so a number sent for a string id is seen, as the
    collector sees it); a field given twice counts with its last value, as Python's and orjson's parsers do.
    """
    from pyspark.sql import functions as F

    raw = F.col("raw_value")
    staged = frame.select(
        "*",
        F.from_json(raw, _values_ddl(), {"allowSingleQuotes": "false"}).alias(_VALUES),
        F.expr("json_object_keys(raw_value)").alias(_KEYS),
        # The text with every string literal replaced by one letter: one flat JSON object has exactly one brace
        # pair, at its two ends, so text after the object (which Spark's parser would ignore) is seen.
        F.regexp_replace(raw, r'"(?:[^"\\]|\\.)*"', "s").alias(_SHAPE),
    )
    typed = [F.expr(f"try_variant_get({_VALUES}.`{spec.name}`, '$', '{_spark_type(spec.column.type)}')").alias(
        spec.name) for spec in ENVELOPE_FIELDS]
    # Each field's JSON type once (``schema_of_variant``: STRING, BIGINT, DECIMAL(p,s), DOUBLE, BOOLEAN,
    # ARRAY<...>, OBJECT<...>, VOID for null; null when absent), in a projection of its own so the checks that
    # read it several times do not compute it again.
    json_types = [F.expr(f"schema_of_variant({_VALUES}.`{name}`)").alias(_type_column(name)) for name in ENVELOPE_NAMES]
    return staged.select(*frame.columns, *typed, *json_types, _VALUES, _KEYS, _SHAPE)


def _type_column(name: str) -> str:
    return f"_t_{name}"


def _helper_columns() -> list[str]:
    return [_VALUES, _KEYS, _SHAPE, *(_type_column(name) for name in ENVELOPE_NAMES)]


def parse_records(df: DataFrame) -> DataFrame:
    """Kafka source rows -> Kafka coordinates, ``raw_value``, the typed envelope columns and ``violation``.

    ``violation`` is null for a record the views may count, otherwise a short reason (see the module docs).
    """
    records = kafka_records(df)
    return parse_raw(records).withColumn("violation", kafka_violation()).drop(*_helper_columns())


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
    return (parse_raw(raw).drop(*_helper_columns(), "raw_value")
            .withColumn("kafka_timestamp", F.col("event_timestamp")))


# --- the envelope as a Spark expression ------------------------------------------------------------------


def _types_sql(types: Iterable[EventType]) -> list[str]:
    return sorted(t.value for t in types)


def java_pattern(pattern: re.Pattern[str]) -> str:
    r"""A pattern of ``warehouse_models.events`` in Java's dialect: Python's ``\Z`` (the very end) is Java's ``\z``."""
    text = pattern.pattern
    return text[:-2] + r"\z" if text.endswith(r"\Z") else text


_JSON_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("STRING",), "boolean": ("BOOLEAN",), "timestamp": ("STRING",), "date": ("STRING",),
    "array<string>": ("ARRAY<STRING>", "ARRAY<VOID>"),
}
"""The JSON types (as ``schema_of_variant`` names them) each column type takes; numbers are judged apart."""


def _json_type(name: str) -> SparkColumn:
    from pyspark.sql import functions as F

    return F.col(_type_column(name))


def _present(name: str) -> SparkColumn:
    """The field is in the record with a value other than JSON null (what the validator checks). A value the
    parser could not read at all is caught once for the record (see :func:`envelope_violation`)."""
    from pyspark.sql import functions as F

    return F.coalesce(_json_type(name) != "VOID", F.lit(False))


def _wrong_json_type(spec: FieldSpec) -> SparkColumn:
    """True when a present field's JSON value is not of a type the validator takes for its column type."""
    from pyspark.sql import functions as F

    json_type = _json_type(spec.name)
    kind = spec.column.type
    typed = F.col(spec.name)
    if kind in ("int", "long", "double"):
        number = json_type.isin("BIGINT", "DOUBLE") | json_type.startswith("DECIMAL")
        if kind != "double":
            # 5.0 is an integer to the validator; 5.5 is not; an integer too large for the column is refused.
            as_double = F.expr(f"try_variant_get({_VALUES}.`{spec.name}`, '$', 'double')")
            number = number & (json_type.eqNullSafe("BIGINT") | (as_double == F.floor(as_double))) & typed.isNotNull()
        wrong = ~F.coalesce(number, F.lit(False))
    else:
        wrong = ~F.coalesce(json_type.isin(*_JSON_TYPES[kind]), F.lit(False)) | typed.isNull()
        if kind == "array<string>":
            wrong = wrong | F.coalesce(F.exists(typed, lambda item: item.isNull()), F.lit(False))
        if kind == "timestamp":
            from warehouse_models.events import TIMESTAMP_RE

            wrong = wrong | ~F.coalesce(F.expr(f"try_variant_get({_VALUES}.`{spec.name}`, '$', 'string')")
                                        .rlike(java_pattern(TIMESTAMP_RE)), F.lit(False))
        if kind == "date":
            from warehouse_models.events import DATE_RE

            wrong = wrong | ~F.coalesce(F.expr(f"try_variant_get({_VALUES}.`{spec.name}`, '$', 'string')")
                                        .rlike(java_pattern(DATE_RE)), F.lit(False))
    return _present(spec.name) & wrong


def _field_violation(spec: FieldSpec) -> list[tuple[SparkColumn, str]]:
    """(condition that is true when the field is wrong, reason) pairs for one field, in checking order."""
    from pyspark.sql import functions as F

    col = F.col(spec.name)
    event_type = F.col("event_type")
    present = _present(spec.name)
    checks: list[tuple[SparkColumn, str]] = []
    all_types = set(EventType)
    if set(spec.allowed_for) != all_types:
        checks.append((present & ~event_type.isin(_types_sql(spec.allowed_for)),
                       f"{spec.name}: does not belong on this event type"))
    checks.append((_wrong_json_type(spec), f"{spec.name}: not of the field's type"))
    if spec.max_length is not None:
        checks.append((F.length(col) > spec.max_length, f"{spec.name}: longer than {spec.max_length} characters"))
    if spec.choices is not None:
        checks.append((col.isNotNull() & ~col.isin(list(spec.choices)), f"{spec.name}: not one of the choices"))
    if spec.pattern is not None:
        checks.append((col.isNotNull() & ~col.rlike(java_pattern(spec.pattern)),
                       f"{spec.name}: has characters not allowed"))
    if spec.minimum is not None:
        checks.append((col < F.lit(spec.minimum), f"{spec.name}: below the minimum {spec.minimum:g}"))
    if spec.maximum is not None:
        checks.append((col > F.lit(spec.maximum), f"{spec.name}: above the maximum {spec.maximum:g}"))
    if spec.column.type == "double":
        checks.append((F.isnan(col) | col.isin(float("inf"), float("-inf")), f"{spec.name}: must be a finite number"))
    if spec.column.type == "array<string>":
        checks.append((F.size(col) > 64, f"{spec.name}: more than 64 strings"))
        checks.append((F.exists(col, lambda item: F.length(item) > MAX_STRING_LENGTH),
                       f"{spec.name}: a string longer than {MAX_STRING_LENGTH} characters"))
    if spec.required_for and spec.name not in ("event_id", "schema_version", "event_type", "event_timestamp"):
        checks.append((~present & event_type.isin(_types_sql(spec.required_for)),
                       f"{spec.name}: is required on this event type"))
    return checks


def envelope_violation(*, received: SparkColumn) -> SparkColumn:
    """A string column: null when the row's envelope passes every check, else the first failed check.

    Reads the columns of :func:`parse_raw` (the typed fields and its helper columns). The same verdict as the
    validator the collector and bronze run (``warehouse_models.events.decode_and_validate``) on every record:
    JSON that is not one object (or not UTF-8), fields outside the envelope, a value of the wrong JSON type,
    timestamps outside the one form the envelope takes, and every per-field rule.

    Args:
        received: when the record was received (Kafka's timestamp); event time is judged against it, as the
            collector judges it against its receive time.
    """
    from pyspark.sql import functions as F

    known = F.array(*[F.lit(name) for name in ENVELOPE_NAMES])
    keys = F.col(_KEYS)
    # The envelope fields whose value the parser read (its JSON type is known). A record with as many keys is
    # whole: each read field is one of its keys, so no key is left over to be unknown, given twice or unread.
    # Only the others pay for the set operations, which Spark runs element by element without code generation.
    read = sum(F.when(_json_type(name).isNotNull(), 1).otherwise(0) for name in ENVELOPE_NAMES)
    whole = F.size(keys) == read
    checks: list[tuple[SparkColumn, str]] = [
        (F.col("raw_value").isNull() | ~F.expr("is_valid_utf8(raw_value)") | keys.isNull()
         | ~F.col(_SHAPE).rlike(r"^\s*\{[^{}]*\}\s*\z"),
         "not an envelope (not one JSON object)"),
        (~whole & (F.size(F.array_except(keys, known)) > 0), "a field that is not in the envelope"),
        # Every key of the record has a value the parser read, or the JSON is broken inside a value (a control
        # character, a bad escape) in a way the parser skipped. A key given twice counts once, as the validator
        # keeps its last value.
        (~whole & (F.size(F.array_distinct(keys)) != read), "not an envelope (a value that cannot be read)"),
        (F.col("event_id").isNull(), "event_id: missing"),
        (~_json_type("schema_version").eqNullSafe("BIGINT")
         | ~F.col("schema_version").isin(sorted(SUPPORTED_SCHEMA_VERSIONS)),
         "schema_version: missing or not supported"),
        (F.col("event_type").isNull() | ~_json_type("event_type").eqNullSafe("STRING")
         | ~F.col("event_type").isin(_types_sql(EventType)),
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

"""Malformed records read from Kafka go to the dead-letter topic with the reason; the other queries run on.

The collector never writes a malformed event to the event topics, but any other producer can. This query reads
the event topics' raw records, runs the shared validator on each (the same pandas UDF bronze uses, so the
reason is word for word the collector's) and writes every refused one to the dead-letter topic as a
dead-letter record (``warehouse_models.dead_letter``): reason, field, raw payload, source topic, partition and
offset, stage ``speed_layer`` and the Kafka timestamp as the receive time. From there bronze lands it in the
dead-letter table.

The dead letter's id is the record's Kafka coordinates, so a micro-batch replayed after a crash (the Kafka sink
is at-least-once) produces the same ids and readers can drop the repeats.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.bronze.transform import parse_envelope
from speed_layer.query import SinkContext, ViewQuery
from warehouse_models.dead_letter import DEAD_LETTER_COLUMNS
from warehouse_models.events import TopicKind
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

STAGE = "speed_layer"

EVENT_TOPICS = (TopicKind.PLAYBACK, TopicKind.INTERACTIONS, TopicKind.CATALOG, TopicKind.DERIVED)


def dead_letter_rows(records: DataFrame, settings: Settings) -> DataFrame:
    """Kafka records (``kafka_records`` columns, and ``violation`` when the speed layer's check judged them first)
    -> ``key``/``value`` of the dead letters of the refused ones.

    ``value`` is the dead-letter record as JSON with the columns of ``DEAD_LETTER_COLUMNS``; ``key`` is the
    source topic, so one topic's dead letters keep their order.
    """
    from pyspark.sql import functions as F

    checked = parse_envelope(records)
    if "violation" in records.columns:
        # The speed layer's own check refused these records. The validator agrees on every record (tested with a
        # corpus); should it ever accept one, the record is still dead-lettered with the check's reason rather
        # than lost between the two.
        checked = checked.withColumn("parse_error", F.coalesce(F.col("parse_error"), F.col("violation")))
    checked = checked.where(F.col("parse_error").isNotNull())
    coordinates = F.concat_ws("/", F.col("kafka_topic"), F.col("kafka_partition").cast("string"),
                              F.col("kafka_offset").cast("string"))
    field = F.regexp_extract(F.col("parse_error"), r"^([A-Za-z_][A-Za-z0-9_]*): ", 1)
    values = {
        "dead_letter_id": coordinates,
        "reason": F.col("parse_error"),
        "field": F.when(field == "", F.lit(None)).otherwise(field),
        "stage": F.lit(STAGE),
        "source": F.concat(F.lit("kafka:"), coordinates),
        "source_topic": F.col("kafka_topic"),
        "source_partition": F.col("kafka_partition"),
        "source_offset": F.col("kafka_offset"),
        "event_id": F.col("event_id"),
        "event_type": F.col("event_type"),
        "raw_payload": F.col("raw_value"),
        "raw_encoding": F.lit("utf-8"),
        # The session time zone is UTC (infra.spark), so this is the canonical wire form of a timestamp.
        "received_at": F.date_format(F.col("kafka_timestamp"), "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"),
    }
    missing = [c.name for c in DEAD_LETTER_COLUMNS if c.name not in values]
    if missing:
        raise ValueError(f"dead-letter columns without a value: {missing}")
    record = F.struct(*[values[c.name].alias(c.name) for c in DEAD_LETTER_COLUMNS])
    return checked.select(F.col("kafka_topic").alias("key"), F.to_json(record).alias("value"))


def write_dead_letters(batch: DataFrame, ctx: SinkContext) -> None:
    """Produce one micro-batch's dead letters to the dead-letter topic (the Kafka sink's batch writer)."""
    batch.persist()
    try:
        count = batch.count()
        if count:
            (batch.write.format("kafka")
             .options(**ctx.settings.spark_kafka_options())
             .option("topic", ctx.settings.topics.dead_letter.name)
             .save())
            logger.warning("batch %d: %d malformed records sent to %s", ctx.batch_id, count,
                           ctx.settings.topics.dead_letter.name)
        ctx.stats["dead_letters"] = count
    finally:
        batch.unpersist()


QUERY = ViewQuery(
    name="dead_letters",
    description="records on the event topics that fail the envelope -> dead-letter topic, with the reason",
    topics=EVENT_TOPICS,
    transform=dead_letter_rows,
    write=write_dead_letters,
    output_mode="append",
    reads="records",
)

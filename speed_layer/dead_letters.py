"""Malformed records read from Kafka go to the dead-letter topic with the reason; the other queries run on.

The collector never writes a malformed event to the event topics, but any other producer can. The shared query's
envelope check (:func:`speed_layer.source.envelope_violation`) refuses exactly what the collector refuses; this
view takes the refused records of each micro-batch (few: their raw bytes, Kafka coordinates and receive time go
to the driver with the other views' rows, in the same Spark job), runs the shared validator
(``warehouse_models.events.decode_and_validate``) on each for its reason, word for word the collector's, and
produces a dead-letter record (``warehouse_models.dead_letter``) to the dead-letter topic: reason, field, raw
payload, source topic, partition and offset, stage ``speed_layer`` and the Kafka timestamp as the receive time.
From there bronze lands it in the dead-letter table.

The dead letter's id is the record's Kafka coordinates, so a micro-batch replayed after a crash (the producer is
at-least-once) produces the same ids and readers can drop the repeats. A send that fails fails the micro-batch,
which Spark then runs again: a refused record is never lost.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from speed_layer.monitoring import DEAD_LETTERS
from speed_layer.query import SinkContext, produce_all, shared_view
from warehouse_models.dead_letter import EMPTY_RECORD_REASON, dead_letter_record
from warehouse_models.events import TopicKind, decode_and_validate
from warehouse_models.metrics.contributions import Contributions
from warehouse_models.redis_io import utc_from_ms

if TYPE_CHECKING:
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

STAGE = "speed_layer"

EVENT_TOPICS = (TopicKind.PLAYBACK, TopicKind.INTERACTIONS, TopicKind.CATALOG, TopicKind.DERIVED)

_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): ")


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    return F.col("violation").isNotNull()


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    return {"kafka_topic": F.col("kafka_topic"), "kafka_partition": F.col("kafka_partition"),
            "kafka_offset": F.col("kafka_offset"), "received_ms": F.unix_millis("kafka_timestamp"),
            "raw": F.col("raw_value").cast("binary"), "violation": F.col("violation")}


CONTRIBUTIONS = Contributions(where=_where, columns=_columns)
"""Each record the envelope check refused (few): its coordinates, receive time, bytes and the check's reason (kept
for a record the validator would accept, which the corpus test says never happens)."""


def dead_letter_of(row: dict[str, Any]) -> dict[str, Any]:
    """The dead-letter record of one refused Kafka record (a collected row)."""
    received = utc_from_ms(int(row["received_ms"]))
    raw: bytes | None = row["raw"]
    reason: str | None
    field: str | None
    if raw is None:
        reason, field = EMPTY_RECORD_REASON, None
    else:
        verdict = decode_and_validate(raw, now=received)
        reason, field = verdict.reason, verdict.field
        if reason is None:  # the Spark check refused what the validator accepts: keep it, with the check's reason
            reason = str(row["violation"] or "refused by the speed layer's envelope check")
            match = _FIELD.match(reason)
            field = match.group(1) if match else None
    coordinates = f"{row['kafka_topic']}/{row['kafka_partition']}/{row['kafka_offset']}"
    letter = dead_letter_record(raw or b"", reason or EMPTY_RECORD_REASON, field=field, stage=STAGE,
                                source=f"kafka:{coordinates}", received_at=received, source_topic=row["kafka_topic"],
                                source_partition=int(row["kafka_partition"]), source_offset=int(row["kafka_offset"]))
    letter["dead_letter_id"] = coordinates
    return letter


def apply_dead_letters(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Produce one micro-batch's dead letters to the dead-letter topic and wait until the broker has them all."""
    ctx.stats["dead_letters"] = len(rows)
    if not rows:
        return
    topic = ctx.settings.topics.dead_letter.name
    produce_all(ctx.settings, topic, [(row["kafka_topic"].encode(), json.dumps(dead_letter_of(row)).encode())
                                      for row in rows])
    DEAD_LETTERS.inc(len(rows))
    logger.warning("batch %d: %d malformed records sent to %s", ctx.batch_id, len(rows), topic)


QUERY = shared_view(
    name="dead_letters",
    description="records on the event topics that fail the envelope -> dead-letter topic, with the reason",
    topics=EVENT_TOPICS,
    contributions=CONTRIBUTIONS,
    apply=apply_dead_letters,
    reads="records",
    repeatable=False,  # sent to Kafka at least once: after the other views landed
)

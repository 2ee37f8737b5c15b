"""The dead-letter record: what was refused, why, and where it came from. Nothing is dropped silently."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from warehouse_models.events import format_timestamp, printable
from warehouse_models.types import Column

DEAD_LETTER_COLUMNS: tuple[Column, ...] = (
    Column("dead_letter_id", "string", "Unique id of this dead letter.", nullable=False),
    Column("reason", "string", "Why it was refused; starts with the field name when one field is at fault.",
           nullable=False),
    Column("field", "string", "The field at fault, when there is one."),
    Column("stage", "string", "Who refused it: collector, speed_layer, bronze.", nullable=False),
    Column("source", "string", "Where it came from: the client address, or topic/partition/offset.", nullable=False),
    Column("source_topic", "string", "Kafka topic it was read from, if any."),
    Column("source_partition", "int", "Kafka partition it was read from, if any."),
    Column("source_offset", "long", "Kafka offset it was read at, if any."),
    Column("event_id", "string", "The event's id when one could be read."),
    Column("event_type", "string", "The event's type when one could be read."),
    Column("raw_payload", "string", "The payload as received (UTF-8, or base64 when not UTF-8)."),
    Column("raw_encoding", "string", "utf-8 or base64.", nullable=False),
    Column("received_at", "timestamp", "When the refusing stage received it (processing time).", nullable=False),
)

EMPTY_RECORD_REASON = "not an envelope (a record without a value)"
"""The reason a Kafka record with no value at all (a tombstone) gets: refused, never landed as an event."""


def dead_letter_record(
    raw: bytes | str,
    reason: str,
    *,
    field: str | None,
    stage: str,
    source: str,
    received_at: datetime | None = None,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    parsed: Any = None,
) -> dict[str, Any]:
    """Build the dead-letter record for one refused payload (JSON-ready: timestamps as strings)."""
    if isinstance(raw, str):
        text, encoding = raw, "utf-8"
    else:
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    if parsed is None and encoding == "utf-8":
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    event_id = parsed.get("event_id") if isinstance(parsed, dict) else None
    event_type = parsed.get("event_type") if isinstance(parsed, dict) else None
    return {
        "dead_letter_id": uuid.uuid4().hex,
        "reason": reason,
        "field": field,
        "stage": stage,
        "source": source,
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        # As the record said them, escaped where they are not valid Unicode (a lone surrogate from a \ud800).
        "event_id": printable(event_id) if isinstance(event_id, str) else None,
        "event_type": printable(event_type) if isinstance(event_type, str) else None,
        "raw_payload": text,
        "raw_encoding": encoding,
        "received_at": format_timestamp(received_at or datetime.now(timezone.utc)),
    }

"""Bronze transformations on small batch DataFrames shaped like Spark's Kafka source (local Spark, no Kafka).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_bronze.py``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from batch_layer.bronze.transform import (
    UNREADABLE_DEAD_LETTER_REASON,
    bronze_frame,
    dead_letter_rows,
    parse_envelope,
)
from warehouse_models.dead_letter import dead_letter_record
from warehouse_models.events import decode_and_validate, format_timestamp
from warehouse_models.kafka_records import kafka_records
from warehouse_models.tables import BRONZE_PLAYBACK, DEAD_LETTER

RECEIVED = datetime(2026, 1, 5, 20, 0, 5, tzinfo=timezone.utc)

KAFKA_SOURCE_DDL = "topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP, key BINARY, value BINARY"


def _heartbeat(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": "ev-1", "schema_version": 1, "event_type": "heartbeat",
        "event_timestamp": format_timestamp(RECEIVED - timedelta(seconds=5)),
        "account_id": "acc-1", "user_id": "usr-1", "device_type": "tv", "session_id": "ses-1",
        "content_id": "tt-1", "position_seconds": 120.5, "player_state": "playing", "bitrate_kbps": 4500,
    }
    event.update(changes)
    return event


GOOD = json.dumps(_heartbeat()).encode()
MALFORMED = b'{"event_id": "ev-2", "schema_version": 1,'
INVALID = json.dumps(_heartbeat(event_id="ev-3", position_seconds=-5)).encode()
NOT_UTF8 = b'{"event_id": "ev-4\xff"}'


def _kafka_frame(spark, values: list[bytes], topic: str = "t.playback"):
    rows = [(topic, 0, offset, RECEIVED.replace(tzinfo=None), b"acc-1", value) for offset, value in enumerate(values)]
    return spark.createDataFrame(rows, KAFKA_SOURCE_DDL)


def _by_offset(df) -> dict[int, dict]:
    return {row["kafka_offset"]: row.asDict() for row in df.collect()}


def test_parse_envelope_keeps_every_record_with_the_validators_reason(spark):
    rows = _by_offset(parse_envelope(kafka_records(_kafka_frame(spark, [GOOD, MALFORMED, INVALID, NOT_UTF8]))))

    good = rows[0]
    assert good["parse_error"] is None
    assert good["event_id"] == "ev-1" and good["position_seconds"] == 120.5 and good["bitrate_kbps"] == 4500
    assert good["event_timestamp"] == RECEIVED.replace(tzinfo=None) - timedelta(seconds=5)
    assert good["raw_value"] == GOOD.decode()
    assert (good["kafka_topic"], good["kafka_partition"], good["kafka_key"]) == ("t.playback", 0, "acc-1")

    assert rows[1]["parse_error"].startswith("not valid JSON")
    assert rows[1]["event_id"] is None and rows[1]["raw_value"] == MALFORMED.decode()

    assert rows[2]["parse_error"].startswith("position_seconds:")
    assert rows[2]["event_id"] == "ev-3", "fields of a refused record are kept as parsed"

    assert "UnicodeDecodeError" in rows[3]["parse_error"]
    assert rows[3]["raw_value"].startswith('{"event_id": "ev-4') and "\ufffd" in rows[3]["raw_value"]

    # Word for word what the collector says, judged at the Kafka timestamp.
    for offset, raw in enumerate([GOOD, MALFORMED, INVALID, NOT_UTF8]):
        assert rows[offset]["parse_error"] == decode_and_validate(raw, now=RECEIVED).reason


def test_event_time_is_judged_against_the_kafka_timestamp_not_the_job_clock(spark):
    old = json.dumps(_heartbeat(event_timestamp="2020-01-01T00:00:00.000Z")).encode()
    rows = _by_offset(parse_envelope(kafka_records(_kafka_frame(spark, [GOOD, old]))))
    assert rows[0]["parse_error"] is None, "a 2026 event stays valid whenever bronze replays it"
    assert rows[1]["parse_error"].startswith("event_timestamp:")


def test_dead_letter_rows_parse_records_and_keep_unreadable_ones(spark):
    letter = dead_letter_record(INVALID, "position_seconds: -5 is below the minimum 0", field="position_seconds",
                                stage="collector", source="127.0.0.1", received_at=RECEIVED)
    df = _kafka_frame(spark, [json.dumps(letter).encode(), b"garbage"], topic="t.dead-letter")
    rows = _by_offset(dead_letter_rows(kafka_records(df)))

    assert rows[0]["dead_letter_id"] == letter["dead_letter_id"]
    assert (rows[0]["reason"], rows[0]["field"], rows[0]["stage"]) == (
        letter["reason"], "position_seconds", "collector")
    assert rows[0]["event_id"] == "ev-3" and rows[0]["raw_payload"] == INVALID.decode()
    assert rows[0]["received_at"] == RECEIVED.replace(tzinfo=None)

    assert rows[1]["reason"] == UNREADABLE_DEAD_LETTER_REASON
    assert rows[1]["source"] == rows[1]["dead_letter_id"] == "t.dead-letter/0/1"
    assert rows[1]["raw_payload"] == "garbage" and rows[1]["received_at"] == RECEIVED.replace(tzinfo=None)


@pytest.mark.parametrize("spec", [BRONZE_PLAYBACK, DEAD_LETTER], ids=lambda s: s.name)
def test_bronze_frame_has_the_declared_columns_in_order(spark, spec):
    values = [GOOD, MALFORMED] if spec is BRONZE_PLAYBACK else [b"garbage"]
    out = bronze_frame(_kafka_frame(spark, values), spec)
    assert out.columns == spec.column_names
    types = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    assert types["kafka_offset"] == "bigint" and types["ingest_date"] == "date"
    rows = out.collect()
    assert len(rows) == len(values)
    assert all(r["ingest_date"] == r["ingested_at"].date() for r in rows)

"""One verdict per record: the collector, bronze and the speed layer accept and refuse exactly the same records.

The corpus takes a valid event of every event type and breaks every field of it in every way the envelope
forbids (wrong JSON type, too long, outside its choices or range, characters its pattern refuses, timestamps
outside the one form, a field that does not belong on the type, a required field left out), then adds records
no client library would write (not JSON, not one object, text after the object, a field given twice, bytes
that are not UTF-8, fields outside the envelope). Each record is judged four ways:

- the collector: ``parse_body`` + ``plan_batch``, as a POST of that one record;
- the shared validator on the raw bytes (``decode_and_validate``), the reference;
- bronze: ``parse_envelope`` (the validator in a pandas UDF) on the record as a Kafka row;
- the speed layer: ``parse_records`` (``reelytics.speed.EnvelopeViolation`` in the JVM) on the same Kafka row.

The four verdicts must be the same for every record.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from batch_layer.bronze.transform import parse_envelope
from serving.collector.batch import parse_body, plan_batch
from simulator import SimulationConfig, simulate
from speed_layer.source import parse_records
from warehouse_models.events import (
    ENVELOPE_FIELDS,
    MAX_STRING_LENGTH,
    EventType,
    FieldSpec,
    decode_and_validate,
    format_timestamp,
    validate_event,
)
from warehouse_models.topics import Topics

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RECEIVED = START + timedelta(minutes=3)


def _base_events() -> dict[EventType, dict[str, Any]]:
    """A valid event of every event type: the simulator's, with every optional field it may carry filled in."""
    config = SimulationConfig(start=START, duration=timedelta(minutes=3), users=60, titles=30, channels=3)
    bases: dict[EventType, dict[str, Any]] = {}
    for event in simulate(config):
        bases.setdefault(EventType(event["event_type"]), dict(event))
    if EventType.VIEW_END not in bases:
        bases[EventType.VIEW_END] = {
            "event_id": "ve-1", "schema_version": 1, "event_type": "view_end",
            "event_timestamp": format_timestamp(START), "account_id": "acc-1", "user_id": "usr-1",
            "device_type": "tv", "session_id": "ses-1", "content_id": "vod-1", "watch_seconds": 30.0,
            "end_reason": "heartbeat_timeout"}
    for event_type, event in bases.items():
        assert validate_event(event, now=RECEIVED).ok, (event_type, validate_event(event, now=RECEIVED).reason)
    return bases


def _wrong_values(spec: FieldSpec) -> list[Any]:
    """Values of every JSON type but the field's own, then values of its type that break one of its rules."""
    kind = spec.column.type
    values: list[Any] = []
    if kind != "string" and kind not in ("timestamp", "date"):
        values += ["7", "x"]
    if kind not in ("int", "long", "double"):
        values += [7, 7.5, -1]
    if kind in ("int", "long"):
        values += [7.5, 1e30, 10**30]
    if kind != "boolean":
        values += [True, False]
    if kind != "array<string>":
        values += [[], ["a"]]
    values += [{"k": 1}, {}]
    if kind == "string":
        limit = spec.max_length or MAX_STRING_LENGTH
        values += ["", "a" * (limit + 1), "bad id!", "abc\n", "ok\t", "\u00e9t\u00e9", "\ud83c\udfac", "\ud800"]
        if spec.choices:
            values += ["zzz", spec.choices[0].upper(), spec.choices[0] + " "]
    if kind in ("int", "long", "double"):
        for bound in (spec.minimum, spec.maximum):
            if bound is not None:
                values += [bound, bound - 1, bound + 1, bound - 0.5, bound + 0.5]
        values += [5.0, -0.0, 0]
    if kind == "timestamp":
        values += ["2026-03-01T12:00:00", "2026-03-01T12:00:00z", "2026-03-01 12:00:00Z", "2026-03-01T12:00Z",
                   "2026-03-01T12:00:00.1234567Z", "2026-03-01T12:00:00+24:00", "2026-03-01T12:00:00+02:00",
                   "2026-03-01T12:00:00.5-05:30", "0999-03-01T12:00:00Z", "2026-02-30T12:00:00Z",
                   "2026-03-01T24:00:00Z", "2026-03-01T12:00:60Z", "20260301T120000Z", "2026-03-01T12:00:00Z\n",
                   "\u0662\u0660\u0662\u0666-03-01T12:00:00Z", "2026-03-01T12:00:00.000+0000", "soon"]
    if kind == "date":
        values += ["2026-02-30", "2026-1-1", "20260101", "2026-01-01T00:00:00Z", "2026-01-01\n", "2026-13-01"]
    if kind == "array<string>":
        values += [["a", None], [1], ["a" * (MAX_STRING_LENGTH + 1)], ["x"] * 65, ["x"] * 64, "a", ["\ud800"]]
    return values


def _raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=True).encode()


def corpus() -> list[tuple[str, bytes]]:
    """(what was broken, the record's bytes) for the whole corpus."""
    records: list[tuple[str, bytes]] = []
    for event_type, base in sorted(_base_events().items()):
        records.append((f"{event_type}: as simulated", _raw(base)))
        for spec in ENVELOPE_FIELDS:
            name = spec.name
            if event_type in spec.allowed_for:
                for value in _wrong_values(spec):
                    records.append((f"{event_type}.{name} = {value!r:.40}", _raw({**base, name: value})))
                records.append((f"{event_type}.{name} null", _raw({**base, name: None})))
                records.append((f"{event_type}.{name} left out",
                                _raw({k: v for k, v in base.items() if k != name})))
            else:
                records.append((f"{event_type}.{name} not on this type", _raw({**base, name: "x"})))
                records.append((f"{event_type}.{name} not on this type, null", _raw({**base, name: None})))
        text = _raw(base).decode()
        body = text[1:-1]
        records += [
            (f"{event_type}: a field outside the envelope", _raw({**base, "colour": "red"})),
            (f"{event_type}: a field outside the envelope, null", _raw({**base, "colour": None})),
            (f"{event_type}: an envelope field's name in capitals too",
             _raw({**base, "EVENT_TYPE": base["event_type"]})),
            (f"{event_type}: event_type given twice, last wrong", f'{{{body},"event_type":"teleport"}}'.encode()),
            (f"{event_type}: event_id given twice, last right", f'{{"event_id":7,{body}}}'.encode()),
            (f"{event_type}: text after the object", (text + " x").encode()),
            (f"{event_type}: a second object", (text + text).encode()),
            (f"{event_type}: a string after the object", (text + ' "x"').encode()),
            (f"{event_type}: white space around", (" " + text + "\n").encode()),
            (f"{event_type}: in an array", f"[{text}]".encode()),
            (f"{event_type}: single quotes", text.replace('"', "'").encode()),
            (f"{event_type}: a trailing comma", f"{{{body},}}".encode()),
            (f"{event_type}: a comment", f"{{{body} /* c */}}".encode()),
            (f"{event_type}: cut short", text[:-5].encode()),
            (f"{event_type}: bytes that are not UTF-8", text.replace('"event_id": "', '"event_id": "\xff')
             .encode("latin-1")),
            (f"{event_type}: schema_version 1.0", text.replace('"schema_version": 1', '"schema_version": 1.0')
             .encode()),
            (f"{event_type}: schema_version true", text.replace('"schema_version": 1', '"schema_version": true')
             .encode()),
            (f"{event_type}: NaN in a field", text.replace('"schema_version": 1', '"schema_version": NaN').encode()),
            (f"{event_type}: too far in the future",
             _raw({**base, "event_timestamp": format_timestamp(RECEIVED + timedelta(hours=2))})),
            (f"{event_type}: too far in the past",
             _raw({**base, "event_timestamp": format_timestamp(RECEIVED - timedelta(days=31))})),
        ]
    heartbeat = _raw(_base_events()[EventType.HEARTBEAT]).decode()
    records += [
        ("heartbeat: a timestamp past year 9999 once in UTC",
         _raw({**_base_events()[EventType.HEARTBEAT], "event_timestamp": "9999-12-31T23:00:00-05:00"})),
        ("heartbeat: an integer of 400 digits for a number", re.sub(r'"position_seconds": [^,}]+',
                                                                    '"position_seconds": 1' + "0" * 400,
                                                                    heartbeat).encode()),
        ("nested 5,000 deep", b"[" * 5000 + b"]" * 5000),
    ]
    records += [("not JSON", b"not json"), ("empty", b""), ("a number", b"7"), ("a string", b'"x"'),
                ("null", b"null"), ("an empty object", b"{}"), ("nested", b'{"event_id": {"a": 1}}')]
    return records


def _collector_accepts(raw: bytes) -> bool | None:
    """The collector's verdict on a POST of this one record (None when it reads the body as a batch: a JSON
    array, or several objects as NDJSON)."""
    if raw.strip().startswith(b"["):
        return None
    try:
        items = parse_body(raw)
    except Exception:  # the collector's 400 for an empty body
        return False
    if len(items) != 1:
        return None
    (record,) = plan_batch(items, topics=Topics(), source="test", received_at=RECEIVED)
    return record.accepted


@pytest.fixture(scope="module")
def judged(spark) -> list[dict[str, Any]]:
    from pyspark.sql import functions as F

    records = corpus()
    rows = [("playback", 0, offset, RECEIVED, b"k", raw) for offset, (_, raw) in enumerate(records)]
    frame = spark.createDataFrame(
        rows, "topic STRING, partition INT, offset LONG, timestamp TIMESTAMP, key BINARY, value BINARY")
    speed = {row["kafka_offset"]: row["violation"]
             for row in parse_records(frame).select("kafka_offset", "violation").collect()}
    from warehouse_models.kafka_records import kafka_records

    bronze = {row["kafka_offset"]: row["parse_error"]
              for row in parse_envelope(kafka_records(frame)).select("kafka_offset", "parse_error")
              .where(F.lit(True)).collect()}
    out = []
    for offset, (what, raw) in enumerate(records):
        reference = decode_and_validate(raw, now=RECEIVED)
        out.append({"what": what, "raw": raw, "reference": reference.reason, "speed": speed[offset],
                    "bronze": bronze[offset], "collector": _collector_accepts(raw)})
    return out


def test_the_corpus_breaks_every_field_and_keeps_valid_records(judged) -> None:
    refused = sum(1 for r in judged if r["reference"] is not None)
    accepted = len(judged) - refused
    assert len(judged) > 3000 and refused > 2500 and accepted > 100, (len(judged), refused)
    fields = {r["what"].split(" ")[0].split(".")[-1] for r in judged if r["reference"] is not None}
    assert {spec.name for spec in ENVELOPE_FIELDS} <= fields


def test_bronze_refuses_what_the_validator_refuses_for_the_same_reason(judged) -> None:
    wrong = [(r["what"], r["reference"], r["bronze"]) for r in judged if r["bronze"] != r["reference"]]
    assert not wrong, wrong[:10]


def test_the_collector_accepts_exactly_what_the_validator_accepts(judged) -> None:
    wrong = [(r["what"], r["reference"]) for r in judged
             if r["collector"] is not None and r["collector"] != (r["reference"] is None)]
    assert not wrong, wrong[:10]


def test_the_speed_layer_accepts_exactly_what_the_validator_accepts(judged) -> None:
    wrong = [(r["what"], r["reference"], r["speed"]) for r in judged
             if (r["speed"] is None) != (r["reference"] is None)]
    assert not wrong, f"{len(wrong)} records judged differently, e.g. {wrong[:12]}"


@pytest.mark.parametrize(("field", "value"), [
    ("event_type", "teleport"), ("schema_version", 7), ("position_seconds", -3.0), ("player_state", "dancing"),
    ("session_id", None), ("device_type", "toaster"), ("country", "germany"), ("rail_id", "r-1"),
    ("account_id", "x" * 80), ("user_id", 12345), ("position_seconds", "12.5"),
])
def test_the_speed_layer_names_the_field_it_refuses(spark, field: str, value: Any) -> None:
    base = _base_events()[EventType.HEARTBEAT]
    event = {k: v for k, v in {**base, field: value}.items() if v is not None}
    assert validate_event(event, now=RECEIVED).field == field
    frame = spark.createDataFrame([("playback", 0, 0, RECEIVED, b"k", _raw(event))],
                                  "topic STRING, partition INT, offset LONG, timestamp TIMESTAMP, key BINARY, "
                                  "value BINARY")
    (row,) = parse_records(frame).select("violation").collect()
    assert row["violation"] is not None and row["violation"].startswith(f"{field}:"), row["violation"]

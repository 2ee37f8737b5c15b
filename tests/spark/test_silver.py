"""Silver transformations on small hand-made bronze frames (local Spark, no Kafka, no Delta).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_silver.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from batch_layer.silver.transform import (
    affected_event_hours,
    deduplicate,
    silver_events,
    stitch_sessions,
    valid_viewer_events,
    with_event_hour,
)
from tests.unit.test_silver import H20, H21
from warehouse_models.tables import BRONZE_PLAYBACK, SILVER_EVENTS


def _naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _bronze_row(event_id: str, at: datetime, *, received: datetime | None = None, offset: int = 0,
                topic: str = "t.playback", **fields: Any) -> dict[str, Any]:
    """One valid bronze row: a heartbeat of session s1 unless ``fields`` say otherwise."""
    row: dict[str, Any] = dict.fromkeys(BRONZE_PLAYBACK.column_names)
    row.update({
        "kafka_topic": topic, "kafka_partition": 0, "kafka_offset": offset,
        "kafka_timestamp": _naive(received or at + timedelta(seconds=1)), "kafka_key": "a1", "raw_value": "{}",
        "ingest_date": (received or at).date(), "ingested_at": _naive((received or at) + timedelta(minutes=1)),
        "event_id": event_id, "schema_version": 1, "event_type": "heartbeat", "event_timestamp": _naive(at),
        "account_id": "a1", "user_id": "u1", "device_id": "d1", "device_type": "tv", "country": "SE",
        "session_id": "s1", "content_id": "c1", "is_live": False, "player_state": "playing",
    })
    row.update({k: _naive(v) if isinstance(v, datetime) else v for k, v in fields.items()})
    return row


def _frame(spark, rows: list[dict[str, Any]]):
    return spark.createDataFrame([tuple(r[c] for c in BRONZE_PLAYBACK.column_names) for r in rows],
                                 BRONZE_PLAYBACK.spark_ddl().replace(" NOT NULL", ""))


def _rows(df, *columns: str) -> list[tuple]:
    return sorted(tuple(row[c] for c in columns) for row in df.select(*columns).collect())


def test_only_validated_viewer_events_are_kept(spark):
    bronze = _frame(spark, [
        _bronze_row("e1", H20),
        _bronze_row("e2", H20, parse_error="device_type: 'toaster' is not one of tv, ..."),
        _bronze_row("e3", H20, event_type="user_upsert", session_id=None),
        _bronze_row("e4", H20, event_type="click", session_id=None, rail_id="top", button_id="tile"),
        _bronze_row("e5", H20, event_type="view_end", watch_seconds=30.0, end_reason="explicit_end"),
    ])

    assert _rows(valid_viewer_events(bronze), "event_id", "event_type") == [
        ("e1", "heartbeat"), ("e4", "click"), ("e5", "view_end"),
    ]


def test_deduplicate_keeps_the_copy_kafka_got_first(spark):
    bronze = _frame(spark, [
        _bronze_row("e1", H20, received=H20 + timedelta(seconds=9), offset=7),
        _bronze_row("e1", H20, received=H20 + timedelta(seconds=2), offset=3, topic="t.derived"),
        _bronze_row("e1", H20, received=H20 + timedelta(seconds=2), offset=5, topic="t.derived"),
        _bronze_row("e2", H20 + timedelta(seconds=10), offset=8),
    ])

    assert _rows(deduplicate(bronze), "event_id", "kafka_topic", "kafka_offset") == [
        ("e1", "t.derived", 3), ("e2", "t.playback", 8),
    ]


def test_stitch_sessions_fills_identity_from_the_sessions_events(spark):
    bronze = _frame(spark, [
        _bronze_row("e1", H20, event_type="play_request", device_id=None),
        _bronze_row("e2", H20 + timedelta(seconds=10), account_id=None, user_id=None, content_id=None,
                    device_id=None, device_type=None, country=None, is_live=None),
        _bronze_row("e3", H20 + timedelta(seconds=20), device_id="d9", country="NO"),
        _bronze_row("e4", H20, event_type="impression", session_id=None, content_id=None, device_id=None),
    ])

    columns = ("event_id", "account_id", "user_id", "content_id", "device_id", "device_type", "country", "is_live")
    assert _rows(stitch_sessions(bronze), *columns) == [
        ("e1", "a1", "u1", "c1", "d9", "tv", "SE", False),  # device from the session's first event that has one
        ("e2", "a1", "u1", "c1", "d9", "tv", "SE", False),
        ("e3", "a1", "u1", "c1", "d9", "tv", "NO", False),  # an event keeps what it carries
        ("e4", "a1", "u1", None, None, "tv", "SE", False),  # no session: left as it is
    ]


def test_late_events_stay_in_the_hour_of_their_event_time(spark):
    at = H20 + timedelta(minutes=59, seconds=50)
    bronze = _frame(spark, [
        _bronze_row("on-time", at, received=H21 + timedelta(minutes=4, seconds=59)),
        _bronze_row("late", at, received=H21 + timedelta(minutes=5)),
        _bronze_row("next", H21, received=H21 + timedelta(hours=3)),
    ])

    assert _rows(with_event_hour(bronze, grace=timedelta(minutes=5)), "event_id", "event_hour", "is_late") == [
        ("late", _naive(H20), True), ("next", _naive(H21), True), ("on-time", _naive(H20), False),
    ]


def test_silver_events_whole_output_for_the_chosen_hours(spark):
    bronze = _frame(spark, [
        _bronze_row("e1", H20 + timedelta(minutes=59, seconds=55), event_type="play_request"),
        _bronze_row("e2", H21 + timedelta(seconds=5), offset=1, device_id=None, country=None,
                    received=H21 + timedelta(hours=2)),
        _bronze_row("e2", H21 + timedelta(seconds=5), offset=2, received=H21 + timedelta(hours=3)),
        _bronze_row("e3", H21 + timedelta(seconds=15), offset=3, event_type="view_end", watch_seconds=10.0,
                    end_reason="explicit_end", player_state=None),
    ])

    out = silver_events(bronze, hours=[H21], grace=timedelta(minutes=5))

    assert out.columns == SILVER_EVENTS.column_names
    columns = ("event_hour", "event_date", "event_id", "event_type", "account_id", "device_id", "country",
               "kafka_offset", "is_late", "watch_seconds")
    assert _rows(out, *columns) == [
        (_naive(H21), H21.date(), "e2", "heartbeat", "a1", "d1", "SE", 1, True, None),
        (_naive(H21), H21.date(), "e3", "view_end", "a1", "d1", "SE", 3, False, 10.0),
    ]
    assert silver_events(bronze, hours=[]).count() == 0


def test_affected_hours_include_the_other_hours_of_touched_sessions(spark):
    old = _frame(spark, [
        _bronze_row("e1", H20 + timedelta(minutes=50)),
        _bronze_row("x1", H20 + timedelta(minutes=10), session_id="s2"),
    ])
    new = _frame(spark, [
        _bronze_row("e2", H21 + timedelta(minutes=1)),
        _bronze_row("bad", H20 - timedelta(hours=5), parse_error="broken"),
    ])
    bronze = old.unionByName(new)

    assert _rows(affected_event_hours(new), "event_hour") == [(_naive(H21),)]
    assert _rows(affected_event_hours(new, bronze), "event_hour") == [(_naive(H20),), (_naive(H21),)]

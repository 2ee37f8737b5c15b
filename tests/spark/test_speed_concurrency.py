"""Concurrency view: the transform keeps only what the view needs; the view is the ground truth's rule.

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_concurrency.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from speed_layer.concurrency import QUERY
from speed_layer.source import events_frame
from tests.unit.test_speed_concurrency import START, T0
from warehouse_models.events import format_timestamp
from warehouse_models.settings import Settings


def _at(seconds: float) -> str:
    return format_timestamp(START + timedelta(seconds=seconds))


def _playback(event_id: str, event_type: str, seconds: float, session: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "schema_version": 1, "event_type": event_type, "event_timestamp": _at(seconds),
            "account_id": "acc-1", "user_id": "usr-1", "device_type": "tv", "session_id": session,
            "content_id": "vod-1", **fields}


def _heartbeat(event_id: str, seconds: float, session: str) -> dict[str, Any]:
    return _playback(event_id, "heartbeat", seconds, session, position_seconds=seconds, player_state="playing")


def _user(event_id: str, seconds: float, max_streams: int) -> dict[str, Any]:
    return {"event_id": event_id, "schema_version": 1, "event_type": "user_upsert", "event_timestamp": _at(seconds),
            "account_id": "acc-1", "user_id": "usr-1", "user_name": "Ann", "subscription_type": "basic",
            "max_streams": max_streams}


def test_rows_keep_heartbeats_ends_fatal_errors_and_plan_records_only(spark):
    events = [
        _user("e-1", 0, 2),
        {"event_id": "e-2", "schema_version": 1, "event_type": "content_upsert", "event_timestamp": _at(0),
         "content_id": "vod-1", "content_title": "A", "content_type": "vod", "genre_primary": "drama"},
        _playback("e-3", "play_request", 1, "ses-1", position_seconds=0.0),
        _playback("e-4", "first_frame", 2, "ses-1", startup_ms=900),
        _heartbeat("e-5", 10, "ses-1"),
        _heartbeat("e-6", 20, "ses-1"),
        _playback("e-7", "error", 25, "ses-1", error_code="SEGMENT_RETRY", error_fatal=False),
        _playback("e-8", "error", 26, "ses-2", error_code="STREAM_LIMIT_REACHED", error_fatal=True),
        _playback("e-9", "play_end", 30, "ses-1", position_seconds=30.0),
        _heartbeat("e-10", 0, "ses-1"),  # late: behind everything else, still kept
    ]
    rows = QUERY.transform(events_frame(spark, events), Settings())
    assert rows.columns == ["account_id", "session_id", "event_type", "event_time_ms", "max_streams"]
    assert sorted((tuple(r) for r in rows.collect()), key=str) == sorted([
        ("acc-1", None, "user_upsert", T0, 2),
        ("acc-1", "ses-1", "heartbeat", T0 + 10_000, None),
        ("acc-1", "ses-1", "heartbeat", T0 + 20_000, None),
        ("acc-1", "ses-2", "error", T0 + 26_000, None),
        ("acc-1", "ses-1", "play_end", T0 + 30_000, None),
        ("acc-1", "ses-1", "heartbeat", T0, None),
    ], key=str)

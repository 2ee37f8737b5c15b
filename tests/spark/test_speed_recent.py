"""Recent items view: which events mean watching, and the newest time per user and title.

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_recent.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from simulator.sessions import epoch_ms
from speed_layer.recent import QUERY
from speed_layer.source import events_frame
from warehouse_models.events import format_timestamp
from warehouse_models.settings import Settings

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = epoch_ms(START)


def _event(event_id: str, event_type: str, seconds: float, content_id: str = "vod-1", **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "schema_version": 1, "event_type": event_type,
            "event_timestamp": format_timestamp(START + timedelta(seconds=seconds)), "account_id": "acc-1",
            "user_id": "usr-1", "device_type": "tv", "session_id": "ses-1", "content_id": content_id, **fields}


def test_rows_keep_first_frames_and_playing_heartbeats(spark):
    events = [
        _event("e-1", "play_request", 0, position_seconds=0.0),
        _event("e-2", "first_frame", 1, startup_ms=700),
        _event("e-3", "heartbeat", 10, position_seconds=9.0, player_state="playing"),
        _event("e-4", "heartbeat", 20, position_seconds=9.0, player_state="paused"),
        _event("e-5", "heartbeat", 30, position_seconds=9.0, player_state="buffering"),
        _event("e-6", "pause", 15, position_seconds=9.0),
        _event("e-7", "heartbeat", 40, "live-1", position_seconds=100.0, player_state="playing", is_live=True),
        {"event_id": "e-8", "schema_version": 1, "event_type": "impression",
         "event_timestamp": format_timestamp(START), "account_id": "acc-1", "user_id": "usr-1",
         "content_id": "vod-2", "rail_id": "r-1", "button_id": "tile"},
        _event("e-9", "heartbeat", 5, "vod-3", position_seconds=4.0, player_state="playing"),  # late
    ]
    rows = QUERY.transform(events_frame(spark, events), Settings())
    assert rows.columns == ["user_id", "content_id", "event_time_ms"]
    assert sorted(tuple(r) for r in rows.collect()) == [
        ("usr-1", "live-1", T0 + 40_000),
        ("usr-1", "vod-1", T0 + 1_000),
        ("usr-1", "vod-1", T0 + 10_000),
        ("usr-1", "vod-3", T0 + 5_000),
    ]

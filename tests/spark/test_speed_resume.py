"""Resume view: positions of VOD playback events, newest by event time, whatever order they come in.

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_resume.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from simulator.sessions import epoch_ms
from speed_layer.resume import QUERY
from speed_layer.source import events_frame
from tests.unit.test_speed_resume import START
from warehouse_models.events import format_timestamp
from warehouse_models.settings import Settings

T0 = epoch_ms(START)


def _event(event_id: str, event_type: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event = {"event_id": event_id, "schema_version": 1, "event_type": event_type,
             "event_timestamp": format_timestamp(START + timedelta(seconds=seconds)), "account_id": "acc-1",
             "user_id": "usr-1", "device_type": "tv", "session_id": "ses-1", "content_id": "vod-1",
             "is_live": False}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


def test_rows_keep_positions_of_vod_playback_only(spark):
    events = [
        _event("e-1", "play_request", 0, position_seconds=0.0),
        _event("e-2", "first_frame", 1, startup_ms=800),
        _event("e-3", "heartbeat", 10, position_seconds=9.0, player_state="playing"),
        _event("e-4", "seek", 12, position_seconds=300.0, seek_from_seconds=11.0),
        _event("e-5", "heartbeat", 20, position_seconds=307.5, player_state="playing", is_live=None),
        _event("e-6", "heartbeat", 20, position_seconds=4000.0, player_state="playing", content_id="live-1",
               is_live=True, session_id="ses-2"),
        _event("e-7", "heartbeat", 5, position_seconds=4.0, player_state="paused"),  # late
        {"event_id": "e-8", "schema_version": 1, "event_type": "view_end",
         "event_timestamp": format_timestamp(START + timedelta(seconds=60)), "account_id": "acc-1",
         "user_id": "usr-1", "session_id": "ses-1", "content_id": "vod-1", "position_seconds": 307.5,
         "watch_seconds": 20.0, "end_reason": "heartbeat_timeout"},
    ]
    rows = QUERY.transform(events_frame(spark, events), Settings())
    assert rows.columns == ["user_id", "content_id", "event_time_ms", "position_seconds"]
    assert sorted(tuple(r) for r in rows.collect()) == [
        ("usr-1", "vod-1", T0, 0.0),
        ("usr-1", "vod-1", T0 + 5_000, 4.0),
        ("usr-1", "vod-1", T0 + 10_000, 9.0),
        ("usr-1", "vod-1", T0 + 12_000, 300.0),
        ("usr-1", "vod-1", T0 + 20_000, 307.5),
    ]

"""Traffic counts per scope and second, and the spike rule, on hand-made data (local Spark, no services).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_spikes.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from speed_layer.source import events_frame
from speed_layer.spikes import QUERY
from tests.unit.test_speed_spikes import SETTINGS
from warehouse_models.events import format_timestamp

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0_S = int(T0.timestamp())


def _event(event_type: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": f"e-{event_type}-{seconds:g}", "schema_version": 1,
                             "event_type": event_type,
                             "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds))}
    event.update(fields)
    return event


def _heartbeat(seconds: float, content: str) -> dict[str, Any]:
    return _event("heartbeat", seconds, account_id="a1", user_id="u1", device_type="tv", session_id="s1",
                  content_id=content, position_seconds=seconds, player_state="playing")


EVENTS = [
    _heartbeat(0.1, "vod-1"),
    _heartbeat(0.9, "vod-1"),
    _heartbeat(1.5, "vod-2"),
    _event("click", 1.2, account_id="a1", user_id="u1", rail_id="top", button_id="tile", content_id="vod-1"),
    _event("impression", 1.3, account_id="a1", user_id="u1", rail_id="top", button_id="tile", content_id="vod-2"),
    _event("content_upsert", 1.0, content_id="vod-1", content_title="One", content_type="vod", genre_primary="drama"),
    _event("view_end", 2.0, account_id="a1", user_id="u1", session_id="s1", content_id="vod-1", watch_seconds=10.0,
           end_reason="explicit_end"),
    _heartbeat(0.5, "vod-1"),  # arrives last, counts in second 0
]


def test_counts_per_scope_and_second(spark):
    rows = QUERY.transform(events_frame(spark, EVENTS), SETTINGS).select("scope", "second", "events").collect()
    assert sorted(tuple(r) for r in rows) == sorted([
        ("topic:playback", T0_S, 3),
        ("content:vod-1", T0_S, 3),
        ("topic:playback", T0_S + 1, 1),
        ("content:vod-2", T0_S + 1, 2),
        ("topic:interactions", T0_S + 1, 2),
        ("content:vod-1", T0_S + 1, 1),
        ("topic:catalog", T0_S + 1, 1),
        ("topic:derived", T0_S + 2, 1),
    ])

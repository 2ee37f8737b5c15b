"""Engagement transform on hand-made events (local Spark, no services).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_engagement.py``.
"""

from __future__ import annotations

from typing import Any

from speed_layer.source import events_frame
from tests.speed_support import epoch, event
from warehouse_models.metrics.engagement import engagement_rows
from warehouse_models.settings import Settings

SETTINGS = Settings(speed_allowed_lateness_seconds=120)


def _heartbeat(user: str, seconds: float, state: str = "playing") -> dict[str, Any]:
    return event("heartbeat", user, seconds, device_type="tv", session_id=f"ses-{user}", content_id="vod-1",
                 position_seconds=100.0 + seconds, player_state=state)


def _interaction(event_type: str, user: str, seconds: float) -> dict[str, Any]:
    return event(event_type, user, seconds, rail_id="top_picks", button_id="tile", content_id="vod-1")


def _rows(df) -> list[tuple[Any, ...]]:
    from pyspark.sql import functions as F

    out = df.select("user_id", F.col("window_start").cast("long"), F.col("window_end").cast("long"),
                    "watch_seconds", "events", "clicks").collect()
    return sorted(tuple(row) for row in out)


def test_two_windows_per_user_with_watch_seconds_events_and_clicks(spark):
    events = [
        _heartbeat("u1", 0),
        _heartbeat("u1", 2, state="paused"),
        _interaction("click", "u1", 3),
        _heartbeat("u1", 10),
        _heartbeat("u2", 1),
        _interaction("impression", "u2", 4),
        # A catalog record names the user too, but it is not engagement.
        event("user_upsert", "u1", 1, user_name="Ada", subscription_type="basic", max_streams=1),
        # Late (after 12:00:10 in the stream) but well inside the allowed lateness: counted in the first window.
        _heartbeat("u1", 4),
    ]
    rows = _rows(engagement_rows(events_frame(spark, events), SETTINGS))
    assert rows == [
        ("u1", epoch(0), epoch(5), 20, 4, 1),
        ("u1", epoch(10), epoch(15), 10, 1, 0),
        ("u2", epoch(0), epoch(5), 10, 2, 0),
    ]

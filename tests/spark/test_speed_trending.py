"""Trending transform on hand-made events (local Spark, no services).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_trending.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from speed_layer.source import events_frame
from tests.speed_support import T0, epoch, playback
from warehouse_models.events import format_timestamp
from warehouse_models.metrics.trending import trending_rows
from warehouse_models.settings import Settings

SETTINGS = Settings(speed_allowed_lateness_seconds=120)


def _playback(event_type: str, user: str, content: str, seconds: float, *, live: bool | None = None,
              **fields: Any) -> dict[str, Any]:
    if live is not None:
        fields["is_live"] = live
    return playback(event_type, user, content, seconds, **fields)


def _heartbeat(user: str, content: str, seconds: float, *, live: bool | None = None) -> dict[str, Any]:
    return _playback("heartbeat", user, content, seconds, live=live, position_seconds=seconds,
                     player_state="playing")


def _rows(df) -> list[tuple[Any, ...]]:
    from pyspark.sql import functions as F

    out = df.select("content_kind", "content_id", F.col("window_start").cast("long"), "viewers").collect()
    return sorted((row[0], row[1], row[2], list(row[3])) for row in out)


def test_distinct_viewers_per_title_and_minute_live_and_vod_apart(spark):
    events = [
        _heartbeat("u1", "vod-A", 0, live=False),
        _playback("first_frame", "u2", "vod-A", 10, startup_ms=900),
        _heartbeat("u1", "vod-A", 20, live=False),
        _playback("play_request", "u3", "live-1", 30, live=True),
        _heartbeat("u1", "vod-A", 70),
        # An impression of a title does not make its viewer.
        {"event_id": "ev-imp", "schema_version": 1, "event_type": "impression",
         "event_timestamp": format_timestamp(T0 + timedelta(seconds=40)), "account_id": "acc-u5", "user_id": "u5",
         "rail_id": "top_picks", "button_id": "tile", "content_id": "vod-B"},
        # Late (after 12:01:10 in the stream) but inside the allowed lateness: counted in the first minute.
        _heartbeat("u4", "vod-A", 5),
    ]
    assert _rows(trending_rows(events_frame(spark, events), SETTINGS)) == [
        ("live", "live-1", epoch(0), ["u3"]),
        ("vod", "vod-A", epoch(0), ["u1", "u2", "u4"]),
        ("vod", "vod-A", epoch(60), ["u1"]),
    ]


def test_viewers_per_country_and_events_without_one_apart(spark):
    from pyspark.sql import functions as F

    events = [_heartbeat("u1", "vod-A", 0) | {"country": "DE"}, _heartbeat("u2", "vod-A", 10) | {"country": "DE"},
              _heartbeat("u1", "vod-A", 20) | {"country": "FR"}, _heartbeat("u3", "vod-A", 30)]
    rows = trending_rows(events_frame(spark, events), SETTINGS).select(
        "country", "content_id", F.col("window_start").cast("long"), "viewers").collect()
    assert sorted((r[0] or "", r[1], r[2], list(r[3])) for r in rows) == [
        ("", "vod-A", epoch(0), ["u3"]), ("DE", "vod-A", epoch(0), ["u1", "u2"]), ("FR", "vod-A", epoch(0), ["u1"])]

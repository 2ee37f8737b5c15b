"""Engagement transform on hand-made events (local Spark, no services).

Contract: one row per (user, 5-second event-time window) with watch_seconds = 10 per playing heartbeat, events =
every playback and interaction event of the user, clicks = click events; catalog events do not count; a late
event inside the allowed lateness is still counted and one beyond it is left to the batch layer.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from speed_layer.engagement import QUERY, engagement_rows
from speed_layer.source import events_frame
from warehouse_models.events import TopicKind, format_timestamp
from warehouse_models.settings import Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings(speed_allowed_lateness_seconds=120)


def _epoch(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp())


def _event(event_type: str, user: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{user}",
        "user_id": user,
    }
    event.update(fields)
    return event


def _heartbeat(user: str, seconds: float, state: str = "playing") -> dict[str, Any]:
    return _event("heartbeat", user, seconds, device_type="tv", session_id=f"ses-{user}", content_id="vod-1",
                  position_seconds=100.0 + seconds, player_state=state)


def _interaction(event_type: str, user: str, seconds: float) -> dict[str, Any]:
    return _event(event_type, user, seconds, rail_id="top_picks", button_id="tile", content_id="vod-1")


def _rows(df) -> list[tuple[Any, ...]]:
    from pyspark.sql import functions as F

    out = df.select("user_id", F.col("window_start").cast("long"), F.col("window_end").cast("long"),
                    "watch_seconds", "events", "clicks").collect()
    return sorted(tuple(row) for row in out)


def test_query_reads_playback_and_interactions():
    assert QUERY.name == "engagement"
    assert QUERY.topics == (TopicKind.PLAYBACK, TopicKind.INTERACTIONS)
    assert QUERY.output_mode == "update"


def test_two_windows_per_user_with_watch_seconds_events_and_clicks(spark):
    events = [
        _heartbeat("u1", 0),
        _heartbeat("u1", 2, state="paused"),
        _interaction("click", "u1", 3),
        _heartbeat("u1", 10),
        _heartbeat("u2", 1),
        _interaction("impression", "u2", 4),
        # A catalog record names the user too, but it is not engagement.
        _event("user_upsert", "u1", 1, user_name="Ada", subscription_type="basic", max_streams=1),
        # Late (after 12:00:10 in the stream) but well inside the allowed lateness: counted in the first window.
        _heartbeat("u1", 4),
    ]
    rows = _rows(engagement_rows(events_frame(spark, events), SETTINGS))
    assert rows == [
        ("u1", _epoch(0), _epoch(5), 20, 4, 1),
        ("u1", _epoch(10), _epoch(15), 10, 1, 0),
        ("u2", _epoch(0), _epoch(5), 10, 2, 0),
    ]


def _run_stream(spark, batches: list[list[dict[str, Any]]], tmp_path: Path) -> list[tuple[Any, ...]]:
    """Feed each list of events as one micro-batch of a file stream; return every row the query emitted."""
    source = tmp_path / "events"
    source.mkdir()
    schema = events_frame(spark, batches[0]).schema
    name = f"engagement_{uuid.uuid4().hex[:8]}"
    stream = spark.readStream.schema(schema).parquet(str(source))
    query = (engagement_rows(stream, SETTINGS).writeStream.format("memory").queryName(name)
             .outputMode("update").option("checkpointLocation", str(tmp_path / "checkpoint")).start())
    try:
        for events in batches:
            events_frame(spark, events).coalesce(1).write.mode("append").parquet(str(source))
            query.processAllAvailable()
        return _rows(spark.table(name))
    finally:
        query.stop()


def test_stream_counts_late_event_inside_lateness_and_drops_one_beyond(spark, tmp_path):
    first = [_heartbeat("u1", 300), _interaction("click", "u1", 301)]
    # The watermark is now 12:05:00 - 120 s = 12:03:00.
    second = [_heartbeat("u1", 240), _heartbeat("u1", 302, state="buffering"), _heartbeat("u1", 120)]
    assert _run_stream(spark, [first, second], tmp_path) == [
        ("u1", _epoch(240), _epoch(245), 10, 1, 0),
        ("u1", _epoch(300), _epoch(305), 10, 2, 1),
        ("u1", _epoch(300), _epoch(305), 10, 3, 1),
    ]

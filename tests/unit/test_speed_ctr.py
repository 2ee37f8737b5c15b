"""CTR transform on hand-made events (local Spark, no services).

Contract: impressions and clicks per (rail, button, content, 1-minute event-time window), from interaction
events only; a click without a content id keeps its own row (content_id null); a late event inside the allowed
lateness is still counted and one beyond it is left to the batch layer.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from speed_layer.ctr import QUERY, ctr_rows, window_buckets
from speed_layer.source import events_frame
from warehouse_models.events import TopicKind, format_timestamp
from warehouse_models.settings import Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings(speed_allowed_lateness_seconds=120)


def _epoch(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp())


def _interaction(event_type: str, seconds: float, *, rail: str = "top_picks", button: str = "tile",
                 content: str | None = "vod-1") -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": "acc-1",
        "user_id": "u1", "page": "home", "rail_id": rail, "button_id": button,
    }
    if content is not None:
        event["content_id"] = content
    return event


def _rows(df) -> list[tuple[Any, ...]]:
    from pyspark.sql import functions as F

    out = df.select("rail_id", "button_id", "content_id", F.col("window_start").cast("long"),
                    "impressions", "clicks").collect()
    return sorted((tuple(row) for row in out), key=repr)


def test_query_reads_interactions():
    assert QUERY.name == "ctr"
    assert QUERY.topics == (TopicKind.INTERACTIONS,)
    assert QUERY.output_mode == "update"


def test_window_buckets_are_the_whole_minutes_inside_the_range():
    assert list(window_buckets(_epoch(0), _epoch(180))) == [_epoch(0), _epoch(60), _epoch(120)]
    assert list(window_buckets(_epoch(30), _epoch(180))) == [_epoch(60), _epoch(120)]


def test_two_windows_per_rail_button_and_title(spark):
    events = [
        _interaction("impression", 0),
        _interaction("impression", 10),
        _interaction("impression", 5, content="vod-2"),
        _interaction("click", 20),
        _interaction("impression", 30, rail="detail_actions", button="play"),
        _interaction("impression", 70),
        _interaction("click", 75, content=None),
        # A playback event is not an interaction.
        {"event_id": "ev-hb", "schema_version": 1, "event_type": "heartbeat",
         "event_timestamp": format_timestamp(T0), "account_id": "acc-1", "user_id": "u1", "device_type": "tv",
         "session_id": "ses-1", "content_id": "vod-1", "position_seconds": 1.0, "player_state": "playing"},
        # Late (after 12:01:15 in the stream) but inside the allowed lateness: counted in the first minute.
        _interaction("impression", 15),
    ]
    assert _rows(ctr_rows(events_frame(spark, events), SETTINGS)) == sorted([
        ("top_picks", "tile", "vod-1", _epoch(0), 3, 1),
        ("top_picks", "tile", "vod-2", _epoch(0), 1, 0),
        ("top_picks", "tile", "vod-1", _epoch(60), 1, 0),
        ("top_picks", "tile", None, _epoch(60), 0, 1),
        ("detail_actions", "play", "vod-1", _epoch(0), 1, 0),
    ], key=repr)


def _run_stream(spark, batches: list[list[dict[str, Any]]], tmp_path: Path) -> list[tuple[Any, ...]]:
    """Feed each list of events as one micro-batch of a file stream; return every row the query emitted."""
    source = tmp_path / "events"
    source.mkdir()
    schema = events_frame(spark, batches[0]).schema
    name = f"ctr_{uuid.uuid4().hex[:8]}"
    stream = spark.readStream.schema(schema).parquet(str(source))
    query = (ctr_rows(stream, SETTINGS).writeStream.format("memory").queryName(name)
             .outputMode("update").option("checkpointLocation", str(tmp_path / "checkpoint")).start())
    try:
        for events in batches:
            events_frame(spark, events).coalesce(1).write.mode("append").parquet(str(source))
            query.processAllAvailable()
        return _rows(spark.table(name))
    finally:
        query.stop()


def test_stream_counts_late_event_inside_lateness_and_drops_one_beyond(spark, tmp_path):
    first = [_interaction("impression", 300)]
    # The watermark is now 12:05:00 - 120 s = 12:03:00.
    second = [_interaction("click", 200), _interaction("impression", 100), _interaction("impression", 330)]
    assert _run_stream(spark, [first, second], tmp_path) == sorted([
        ("top_picks", "tile", "vod-1", _epoch(300), 1, 0),
        ("top_picks", "tile", "vod-1", _epoch(180), 0, 1),
        ("top_picks", "tile", "vod-1", _epoch(300), 2, 0),
    ], key=repr)

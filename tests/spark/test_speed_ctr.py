"""CTR transform on hand-made events (local Spark, no services).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_ctr.py``.
"""

from __future__ import annotations

from typing import Any

from speed_layer.source import events_frame
from tests.speed_support import T0, epoch, interaction, rail_interactions
from warehouse_models.events import format_timestamp
from warehouse_models.metrics.ctr import ctr_rows
from warehouse_models.settings import Settings

SETTINGS = Settings(speed_allowed_lateness_seconds=120)


def _rows(df) -> list[tuple[Any, ...]]:
    from pyspark.sql import functions as F

    out = df.select("rail_id", "button_id", "content_id", F.col("window_start").cast("long"),
                    "impressions", "clicks").collect()
    return sorted((tuple(row) for row in out), key=repr)


def test_two_windows_per_rail_button_and_title(spark):
    events = [
        *rail_interactions(),
        # A playback event is not an interaction.
        {"event_id": "ev-hb", "schema_version": 1, "event_type": "heartbeat",
         "event_timestamp": format_timestamp(T0), "account_id": "acc-1", "user_id": "u1", "device_type": "tv",
         "session_id": "ses-1", "content_id": "vod-1", "position_seconds": 1.0, "player_state": "playing"},
        # Late (after 12:01:15 in the stream) but inside the allowed lateness: counted in the first minute.
        interaction("impression", 15),
    ]
    assert _rows(ctr_rows(events_frame(spark, events), SETTINGS)) == sorted([
        ("top_picks", "tile", "vod-1", epoch(0), 3, 1),
        ("top_picks", "tile", "vod-2", epoch(0), 1, 0),
        ("top_picks", "tile", "vod-1", epoch(60), 1, 0),
        ("top_picks", "tile", None, epoch(60), 0, 1),
        ("detail_actions", "play", "vod-1", epoch(0), 1, 0),
    ], key=repr)

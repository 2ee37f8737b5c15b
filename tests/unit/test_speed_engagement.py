"""Engagement transform on hand-made events (local Spark, no services).

Contract: one row per (user, 5-second event-time window) with watch_seconds = 10 per playing heartbeat, events =
every playback and interaction event of the user, clicks = click events; catalog events do not count; a late
event inside the allowed lateness is still counted and one beyond it is left to the batch layer.
"""

from __future__ import annotations

from speed_layer.engagement import QUERY
from warehouse_models.events import TopicKind


def test_query_reads_playback_and_interactions():
    assert QUERY.name == "engagement"
    assert QUERY.topics == (TopicKind.PLAYBACK, TopicKind.INTERACTIONS)

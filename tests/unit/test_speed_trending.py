"""Trending transform on hand-made events (local Spark, no services).

Contract: per (content kind, title, 1-minute event-time window) the sorted distinct users with any playback
event on it; ``live`` when ``is_live`` is true, else ``vod``; interactions do not make a viewer; a late event
inside the allowed lateness is still counted and one beyond it is left to the batch layer.
"""

from __future__ import annotations

from speed_layer.trending import QUERY
from warehouse_models.events import TopicKind


def test_query_reads_playback():
    assert QUERY.name == "trending"
    assert QUERY.topics == (TopicKind.PLAYBACK,)

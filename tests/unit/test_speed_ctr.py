"""CTR transform on hand-made events (local Spark, no services).

Contract: impressions and clicks per (rail, button, content, 1-minute event-time window), from interaction
events only; a click without a content id keeps its own row (content_id null); a late event inside the allowed
lateness is still counted and one beyond it is left to the batch layer.
"""

from __future__ import annotations

from speed_layer.ctr import QUERY
from tests.speed_support import epoch
from warehouse_models.events import TopicKind
from warehouse_models.redis_io import window_buckets


def test_query_reads_interactions():
    assert QUERY.name == "ctr"
    assert QUERY.topics == (TopicKind.INTERACTIONS,)


def test_window_buckets_are_the_whole_minutes_inside_the_range():
    assert list(window_buckets(epoch(0), epoch(180))) == [epoch(0), epoch(60), epoch(120)]
    assert list(window_buckets(epoch(30), epoch(180))) == [epoch(60), epoch(120)]

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


def test_counts_from_the_live_hours_take_the_hours_from_w_only():
    from warehouse_models.metrics.ctr import counts_from_hours

    hours = {7200: {b"vod-1:impressions": b"4", b"vod-1:clicks": b"1"},
             10800: {"vod:2:impressions": "6", "vod:2:clicks": "2"}}
    assert counts_from_hours(hours, since_epoch=10800) == {"impressions": 6, "clicks": 2, "rate": 2 / 6}
    assert counts_from_hours(hours, since_epoch=0) == {"impressions": 10, "clicks": 3, "rate": 0.3}
    assert counts_from_hours(hours, since_epoch=14400) == {"impressions": 0, "clicks": 0, "rate": 0.0}
    assert counts_from_hours(hours, since_epoch=9000) is None  # inside an hour: the minute buckets are needed

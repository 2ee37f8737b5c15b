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


def test_an_hours_minute_index_names_the_buckets_to_read():
    from warehouse_models.metrics.engagement import minute_field, minutes_of_hour

    hour = 7 * 3600
    indexed = {b"events": b"4", minute_field(hour + 120).encode(): b"3", minute_field(hour).encode(): b"1"}
    assert minutes_of_hour(hour, indexed) == [hour, hour + 120]
    # Totals without an index (an older writer): every minute of the hour may hold windows.
    assert minutes_of_hour(hour, {"events": "4"}) == list(range(hour, hour + 3600, 60))
    assert minutes_of_hour(hour, {}) == []
    assert not minute_field(hour).startswith(("watch_seconds", "events", "clicks"))

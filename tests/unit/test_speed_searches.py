"""Recent searches view: the newest time per user and normalised query, whatever the order."""

from __future__ import annotations

import random

from speed_layer.searches import QUERY, newest_searches


def test_query_is_stateless_and_reads_interactions():
    assert [t.value for t in QUERY.topics] == ["interactions"]
    assert not QUERY.stateful


def test_newest_searches_ignore_order():
    rows = [
        {"user_id": "u1", "search_query": "space opera", "event_time_ms": 10},
        {"user_id": "u1", "search_query": "space opera", "event_time_ms": 30},
        {"user_id": "u1", "search_query": "heist", "event_time_ms": 20},
        {"user_id": "u2", "search_query": "heist", "event_time_ms": 5},
    ]
    for seed in range(6):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert newest_searches(shuffled) == {"u1": {"space opera": 30, "heist": 20}, "u2": {"heist": 5}}

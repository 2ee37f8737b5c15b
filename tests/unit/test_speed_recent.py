"""Recent items view: which events mean watching, and the newest time per user and title.

Contract: ``CONTRIBUTIONS`` keeps ``first_frame`` and ``heartbeat`` events whose player is playing (late ones too:
there is no watermark), one row each; ``newest_watches`` reduces rows to the newest event time per user and
title whatever their order.
"""

from __future__ import annotations

import random

from speed_layer.recent import QUERY, newest_watches


def test_query_is_stateless_and_reads_playback():
    assert [t.value for t in QUERY.topics] == ["playback"]
    assert not QUERY.stateful


def test_newest_watches_ignore_order():
    rows = [
        {"user_id": "u1", "content_id": "c1", "event_time_ms": 10},
        {"user_id": "u1", "content_id": "c1", "event_time_ms": 30},
        {"user_id": "u1", "content_id": "c2", "event_time_ms": 20},
        {"user_id": "u2", "content_id": "c1", "event_time_ms": 5},
    ]
    for seed in range(6):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert newest_watches(shuffled) == {"u1": {"c1": 30, "c2": 20}, "u2": {"c1": 5}}

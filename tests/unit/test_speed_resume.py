"""Resume view: positions of VOD playback events, newest by event time, whatever order they come in.

Contract: ``CONTRIBUTIONS`` keeps every playback event with a ``position_seconds`` on content that is not live
(late ones too: there is no watermark), one row each; ``newest_positions`` reduces rows to the newest
(event time, position) per user and title, equal times keeping the larger position; on a simulated stream the
result is the simulator's ground truth.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from simulator import SimulationConfig, simulate
from simulator.sessions import epoch_ms
from simulator.truth import compute_truth
from speed_layer.resume import QUERY, newest_positions
from warehouse_models.events import parse_timestamp

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_query_is_stateless_and_reads_playback():
    assert [t.value for t in QUERY.topics] == ["playback"]
    assert not QUERY.stateful


def test_newest_positions_ignore_order_and_break_ties_by_position():
    rows = [
        {"user_id": "u1", "content_id": "c1", "event_time_ms": 10, "position_seconds": 100.0},
        {"user_id": "u1", "content_id": "c1", "event_time_ms": 30, "position_seconds": 50.0},
        {"user_id": "u1", "content_id": "c1", "event_time_ms": 20, "position_seconds": 200.0},
        {"user_id": "u1", "content_id": "c2", "event_time_ms": 5, "position_seconds": 7.0},
        {"user_id": "u1", "content_id": "c2", "event_time_ms": 5, "position_seconds": 9.0},
        {"user_id": "u2", "content_id": "c1", "event_time_ms": 1, "position_seconds": 0.0},
    ]
    expected = {"u1": {"c1": (30, 50.0), "c2": (5, 9.0)}, "u2": {"c1": (1, 0.0)}}
    for seed in range(6):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert newest_positions(shuffled) == expected


def test_positions_match_the_simulators_truth_for_any_batching():
    config = SimulationConfig(start=START, duration=timedelta(minutes=20), seed=3, users=200, titles=30, channels=3,
                              sessions_per_user_hour=2.0)
    events = list(simulate(config))
    truth = {(user, content): (epoch_ms(parse_timestamp(v["event_timestamp"])), v["position_seconds"])
             for user, titles in compute_truth(events)["resume_positions"].items() for content, v in titles.items()}
    rows = [{"user_id": e["user_id"], "content_id": e["content_id"],
             "event_time_ms": epoch_ms(parse_timestamp(e["event_timestamp"])),
             "position_seconds": e["position_seconds"]}
            for e in events
            if e.get("position_seconds") is not None and not e.get("is_live") and e["event_type"] != "view_end"]
    assert len(truth) > 50
    for seed in range(3):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        stored: dict[tuple[str, str], tuple[int, float]] = {}
        for lo in range(0, len(shuffled), 997):
            # What the compare-and-set script does with each batch's newest values.
            for user, titles in newest_positions(shuffled[lo:lo + 997]).items():
                for content, value in titles.items():
                    stored[(user, content)] = max(stored.get((user, content), value), value)
        assert stored == truth

"""Resume view: positions of VOD playback events, newest by event time, whatever order they come in.

Contract: ``resume_rows`` keeps every playback event with a ``position_seconds`` on content that is not live
(late ones too: there is no watermark), one row each; ``newest_positions`` reduces rows to the newest
(event time, position) per user and title, equal times keeping the larger position; on a simulated stream the
result is the simulator's ground truth.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from simulator import SimulationConfig, simulate
from simulator.sessions import epoch_ms
from simulator.truth import compute_truth
from speed_layer.resume import QUERY, newest_positions, resume_rows
from speed_layer.source import events_frame
from warehouse_models.events import format_timestamp, parse_timestamp
from warehouse_models.settings import Settings

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = epoch_ms(START)


def _event(event_id: str, event_type: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event = {"event_id": event_id, "schema_version": 1, "event_type": event_type,
             "event_timestamp": format_timestamp(START + timedelta(seconds=seconds)), "account_id": "acc-1",
             "user_id": "usr-1", "device_type": "tv", "session_id": "ses-1", "content_id": "vod-1",
             "is_live": False}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


def test_query_is_stateless_and_reads_playback():
    assert QUERY.realtime_capable and QUERY.output_mode == "append"
    assert [t.value for t in QUERY.topics] == ["playback"]


def test_rows_keep_positions_of_vod_playback_only(spark):
    events = [
        _event("e-1", "play_request", 0, position_seconds=0.0),
        _event("e-2", "first_frame", 1, startup_ms=800),
        _event("e-3", "heartbeat", 10, position_seconds=9.0, player_state="playing"),
        _event("e-4", "seek", 12, position_seconds=300.0, seek_from_seconds=11.0),
        _event("e-5", "heartbeat", 20, position_seconds=307.5, player_state="playing", is_live=None),
        _event("e-6", "heartbeat", 20, position_seconds=4000.0, player_state="playing", content_id="live-1",
               is_live=True, session_id="ses-2"),
        _event("e-7", "heartbeat", 5, position_seconds=4.0, player_state="paused"),  # late
        {"event_id": "e-8", "schema_version": 1, "event_type": "view_end",
         "event_timestamp": format_timestamp(START + timedelta(seconds=60)), "account_id": "acc-1",
         "user_id": "usr-1", "session_id": "ses-1", "content_id": "vod-1", "position_seconds": 307.5,
         "watch_seconds": 20.0, "end_reason": "heartbeat_timeout"},
    ]
    rows = resume_rows(events_frame(spark, events), Settings())
    assert rows.columns == ["user_id", "content_id", "event_time_ms", "position_seconds"]
    assert sorted(tuple(r) for r in rows.collect()) == [
        ("usr-1", "vod-1", T0, 0.0),
        ("usr-1", "vod-1", T0 + 5_000, 4.0),
        ("usr-1", "vod-1", T0 + 10_000, 9.0),
        ("usr-1", "vod-1", T0 + 12_000, 300.0),
        ("usr-1", "vod-1", T0 + 20_000, 307.5),
    ]


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

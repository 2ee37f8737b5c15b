"""The simulator: deterministic, valid, ordered, and its ground truth agrees with the events."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from simulator import SimulationConfig, build_world_for, ground_truth, simulate
from simulator.sessions import STREAM_LIMIT_CODE
from simulator.sinks import paced, write_file
from warehouse_models.events import (
    CATALOG_TYPES,
    EventType,
    encode,
    format_timestamp,
    parse_timestamp,
    validate_event,
)
from warehouse_models.topics import Topics

START = datetime(2026, 1, 5, 20, 0, tzinfo=timezone.utc)
CONFIG = SimulationConfig(start=START, duration=timedelta(minutes=20), seed=7, users=300, titles=60, channels=6,
                          sessions_per_user_hour=1.5)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(simulate(CONFIG))


@pytest.fixture(scope="module")
def truth(events: list[dict[str, Any]]) -> dict[str, Any]:
    return ground_truth(events, config=CONFIG)


def _ms(event: dict[str, Any]) -> int:
    return int(parse_timestamp(event["event_timestamp"]).timestamp() * 1000 + 0.5)


def _sessions(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if "session_id" in event:
            by_session[event["session_id"]].append(event)
    return by_session


def test_same_seed_gives_byte_identical_stream(events: list[dict[str, Any]]) -> None:
    again = list(simulate(CONFIG))
    assert [encode(e) for e in again] == [encode(e) for e in events]


def test_another_seed_or_start_gives_another_stream(events: list[dict[str, Any]]) -> None:
    other_seed = list(simulate(replace(CONFIG, seed=8, duration=timedelta(minutes=5))))
    assert [encode(e) for e in other_seed[:2000]] != [encode(e) for e in events[:2000]]
    later = replace(CONFIG, start=START + timedelta(hours=1), duration=timedelta(minutes=5))
    later_ids = {e["event_id"] for e in simulate(later)}
    assert not later_ids & {e["event_id"] for e in events}


def test_every_event_validates(events: list[dict[str, Any]]) -> None:
    refused = [(e, v.reason) for e in events if not (v := validate_event(e, now=CONFIG.end)).ok]
    assert refused == []
    sample = events[:: max(1, len(events) // 500)]
    assert all(format_timestamp(parse_timestamp(e["event_timestamp"])) == e["event_timestamp"] for e in sample)


def test_ids_unique_times_in_range_and_sorted(events: list[dict[str, Any]]) -> None:
    assert len(events) > 3000
    assert len({e["event_id"] for e in events}) == len(events)
    times = [_ms(e) for e in events]
    assert times == sorted(times)
    assert CONFIG.start_ms <= times[0] and times[-1] < CONFIG.end_ms


def test_catalog_comes_first_and_covers_the_world(events: list[dict[str, Any]]) -> None:
    kinds = [EventType(e["event_type"]) in CATALOG_TYPES for e in events]
    n_catalog = kinds.index(False)
    assert not any(kinds[n_catalog:])
    world = build_world_for(CONFIG)
    assert n_catalog == len(world.titles) + len(world.channels) + len(world.users)
    live = [e for e in events[:n_catalog] if e.get("content_type") == "live"]
    assert live and all(e.get("duration_minutes") is None for e in live)


def test_sessions_follow_the_player_lifecycle(events: list[dict[str, Any]]) -> None:
    outcomes: Counter[str] = Counter()
    for session_id, evs in _sessions(events).items():
        types = [e["event_type"] for e in evs]
        assert types[0] == "play_request", session_id
        if "play_end" in types:
            assert types[-1] == "play_end", session_id
        if "first_frame" in types:
            assert "heartbeat" not in types[: types.index("first_frame")]
            beats = [_ms(e) for e in evs if e["event_type"] == "heartbeat"]
            assert all((b - a) == 10_000 for a, b in pairwise(beats)), session_id
            outcomes["started"] += 1
        else:
            assert "heartbeat" not in types
            fatal = [e for e in evs if e["event_type"] == "error" and e["error_fatal"]]
            outcomes["refused" if fatal and fatal[0]["error_code"] == STREAM_LIMIT_CODE
                     else "start_failure" if fatal else "exit_before_start" if "play_end" in types else "open"] += 1
    assert outcomes["started"] > 50 and outcomes["start_failure"] + outcomes["exit_before_start"] > 0
    seen = Counter(e["event_type"] for e in events)
    for kind in ("buffer_start", "buffer_end", "quality_change", "pause", "seek", "error", "impression", "click"):
        assert seen[kind] > 0, kind


def test_watch_seconds_are_ten_per_playing_heartbeat(events: list[dict[str, Any]], truth: dict[str, Any]) -> None:
    playing = [e for e in events if e["event_type"] == "heartbeat" and e["player_state"] == "playing"]
    assert truth["watch_seconds_total"] == 10 * len(playing) > 0
    per_user: Counter[str] = Counter()
    for e in playing:
        per_user[e["user_id"]] += 10
    assert truth["watch_seconds_per_user"] == dict(per_user)
    assert sum(truth["watch_seconds_per_content"].values()) == truth["watch_seconds_total"]
    assert truth["events_total"] == len(events) == sum(truth["events_per_topic"].values())


def test_views_and_ctr_match_a_recount(events: list[dict[str, Any]], truth: dict[str, Any]) -> None:
    views = Counter(e["content_id"] for e in events if e["event_type"] == "first_frame")
    assert truth["views_per_content"] == dict(views)
    assert truth["sessions"]["total"] == sum(1 for e in events if e["event_type"] == "play_request")
    clicks = sum(r["clicks"] for r in truth["ctr"])
    assert clicks == sum(1 for e in events if e["event_type"] == "click") > 0
    assert all(r["impressions"] >= r["clicks"] for r in truth["ctr"] if r["rail_id"] == "detail_actions")


def test_only_password_sharers_break_their_stream_limit(truth: dict[str, Any]) -> None:
    world = build_world_for(CONFIG)
    sharers = {a.account_id for a in world.accounts if a.is_sharer}
    violations = truth["concurrency_violations"]
    assert sharers and set(violations) == sharers
    for v in violations.values():
        assert v["peak_streams"] > v["max_streams"]
        assert len(v["over_limit_sessions"]) == v["peak_streams"] - v["max_streams"]


def test_spike_channel_floods_in_its_window(events: list[dict[str, Any]], truth: dict[str, Any]) -> None:
    spike = truth["spike"]
    assert spike["channel_id"] == "live-000"
    lo, hi = parse_timestamp(spike["start"]), parse_timestamp(spike["end"])
    joins = [parse_timestamp(e["event_timestamp"]) for e in events
             if e["event_type"] == "play_request" and e["content_id"] == spike["channel_id"]]
    inside = sum(1 for t in joins if lo <= t < hi)
    assert inside == spike["sessions_in_window"] >= 15
    assert inside >= 5 * max(1, spike["sessions_in_previous_window"])


def test_resume_position_is_the_newest_position(events: list[dict[str, Any]], truth: dict[str, Any]) -> None:
    newest: dict[tuple[str, str], float] = {}
    for e in events:
        if e.get("position_seconds") is not None and e.get("is_live") is False:
            newest[(e["user_id"], e["content_id"])] = e["position_seconds"]
    flat = {(u, c): v["position_seconds"] for u, by in truth["resume_positions"].items() for c, v in by.items()}
    assert flat == newest and flat


def test_users_mostly_watch_their_favourite_genres(events: list[dict[str, Any]]) -> None:
    world = build_world_for(CONFIG)
    users = world.users_by_id
    genres = {c.content_id: {c.genre_primary, c.genre_secondary} for c in world.titles}
    vod_starts = [e for e in events if e["event_type"] == "first_frame" and not e["is_live"]]
    liked = sum(1 for e in vod_starts if genres[e["content_id"]] & set(users[e["user_id"]].favourite_genres))
    assert len(vod_starts) > 30 and liked / len(vod_starts) > 0.6


def test_truth_is_json_and_file_sink_writes_the_wire_form(events: list[dict[str, Any]], truth: dict[str, Any],
                                                          tmp_path: Path) -> None:
    assert json.loads(json.dumps(truth)) == truth
    topics = Topics("simtest")
    counts = write_file(iter(events), tmp_path / "events.ndjson", topics=topics)
    lines = (tmp_path / "events.ndjson").read_bytes().splitlines()
    assert lines == [encode(e) for e in events]
    assert counts == {f"simtest.{kind}": n for kind, n in truth["events_per_topic"].items()}


def test_pacing_holds_the_rate() -> None:
    began = time.monotonic()
    assert list(paced(range(21), rate=200.0)) == list(range(21))
    assert time.monotonic() - began >= 0.09

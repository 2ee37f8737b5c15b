"""QoE sums from hand-made playback events: the rule in Python, the view_end outcomes, and the metrics.

Contract: one row per (content, device type, country, event-time minute) with the whole additive sums of
docs/qoe.md; session outcomes (start failure, exit before start, failure after start) are judged once, in the
minute of the event that ended the session or, for a silent session, of its last event once the watermark passes
it plus the heartbeat timeout; a refused request is no outcome; a late event inside the lateness updates its
minute's whole value; ``qoe_metrics`` gives the documented ratios.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from speed_layer.qoe import QUERY
from warehouse_models.events import TopicKind, format_timestamp
from warehouse_models.marts import QOE_RATIO_COLUMNS
from warehouse_models.metrics.qoe import (
    EVENT_COLUMNS,
    EVENT_CONTRIBUTIONS,
    EVENT_FIELDS,
    OUTCOME_FIELDS,
    QOE_FIELDS,
    QOE_METRIC_NAMES,
    QOE_RATIOS,
    UNKNOWN_COUNTRY,
    SliceState,
    merge_sums,
    outcome_counts,
    qoe_metrics,
    qoe_step,
)
from warehouse_models.metrics.sessions import ordered_events

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0_S = int(T0.timestamp())
TIMEOUT_MS = 30_000


def _event(event_type: str, session: str, seconds: float, *, content: str = "vod-1", device: str = "tv",
           country: str | None = "DE", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"{session}-{event_type}-{seconds:g}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{session}",
        "user_id": f"usr-{session}", "device_type": device, "session_id": session, "content_id": content,
    }
    if country is not None:
        event["country"] = country
    event.update(fields)
    return event


def _hb(session: str, seconds: float, kbps: int, state: str = "playing", **slice_: Any) -> dict[str, Any]:
    return _event("heartbeat", session, seconds, position_seconds=seconds, player_state=state, bitrate_kbps=kbps,
                  **slice_)

S1 = [
    _event("play_request", "s1", 0),
    _event("first_frame", "s1", 1, startup_ms=1000, bitrate_kbps=3000),
    _hb("s1", 11, 3000),
    _hb("s1", 21, 3000),
    _event("quality_change", "s1", 25, bitrate_kbps=6000, previous_bitrate_kbps=3000),
    _event("buffer_start", "s1", 40, position_seconds=40.0),
    _event("buffer_end", "s1", 42, stall_ms=2000, position_seconds=40.0),
    _hb("s1", 51, 6000),
    _hb("s1", 61, 6000, state="paused"),
    _event("play_end", "s1", 65, position_seconds=55.0),
]
S1_LATE = _hb("s1", 31, 6000)  # sent before the stall, arrives after everything else


def _sums(**values: int) -> dict[str, int]:
    return {name: values.get(name, 0) for name in QOE_FIELDS}


VOD_1200 = _sums(plays=3, startups=2, startup_ms_sum=1500, playing_seconds=50, stall_ms=2000, rebuffers=1,
                 bitrate_seconds_kbps=3000 * 20 + 6000 * 20 + 1400 * 10, bitrate_seconds=50, quality_changes=2,
                 upshifts=1, downshifts=1, start_failures=1)
VOD_1201 = _sums(plays=2, exits_before_start=1, failures_after_start=1)


def test_query_is_an_additive_view_of_the_shared_query():
    assert QUERY.name == "qoe"
    assert QUERY.topics == (TopicKind.PLAYBACK,)
    assert not QUERY.stateful and QUERY.late_cut
    assert QUERY.contributions is EVENT_CONTRIBUTIONS
    assert EVENT_CONTRIBUTIONS.sums == EVENT_FIELDS
    assert set(EVENT_FIELDS) | set(OUTCOME_FIELDS) == set(QOE_FIELDS) and not set(EVENT_FIELDS) & set(OUTCOME_FIELDS)


def _pandas(events: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{c: e.get(c, "DE" if c == "country" else None) for c in EVENT_COLUMNS} for e in events]
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def _step(state: SliceState, events: list[dict[str, Any]], watermark_s: float) -> list[tuple[int, dict[str, int]]]:
    rows = ordered_events([_pandas(events)]) if events else []
    out = qoe_step(state, rows, watermark_ms=int(watermark_s * 1000), timeout_ms=TIMEOUT_MS)
    return list(out.items())


def test_the_rule_gives_whole_values_updates_a_late_minute_and_finalises():
    state = SliceState.empty()
    s1_1200 = _sums(plays=1, startups=1, startup_ms_sum=1000, playing_seconds=30, stall_ms=2000, rebuffers=1,
                    bitrate_seconds_kbps=3000 * 20 + 6000 * 10, bitrate_seconds=30, quality_changes=1, upshifts=1)
    assert _step(state, S1[:8], 0) == [(T0_S, s1_1200)]
    assert state.next_timeout_ms(TIMEOUT_MS) == (T0_S + 51) * 1000 + TIMEOUT_MS

    # Next step (watermark 12:00:41): the late heartbeat of 12:00:31 and the end at 12:01:05.
    with_late = {**s1_1200, "playing_seconds": 40, "bitrate_seconds_kbps": 180_000, "bitrate_seconds": 40}
    assert _step(state, [S1_LATE, *S1[8:]], T0_S + 41) == [(T0_S, with_late), (T0_S + 60, _sums())]

    # A silent request in the same slice, then the watermark moves on: the exit counts in its minute.
    assert _step(state, [_event("play_request", "s9", 110)], T0_S + 41) == [(T0_S + 60, _sums(plays=1))]
    assert _step(state, [], T0_S + 141) == [(T0_S + 60, _sums(plays=1, exits_before_start=1))]
    assert sorted(state.buckets) == [T0_S + 60] and state.sessions == {}

    # Past the end of 12:01 plus the timeout the minute is final and the state is gone.
    assert _step(state, [], T0_S + 151) == []
    assert state.buckets == {} and state.next_timeout_ms(TIMEOUT_MS) is None


def _ended(content: str | None = "vod-1", *, at_s: float, country: str | None = "DE", **flags: bool) -> dict[str, Any]:
    return {"content_id": content, "device_type": "tv", "country": country, "outcome_ms": int((T0_S + at_s) * 1000),
            "started": False, "start_failure": False, "exit_before_start": False, "failed_after_start": False,
            **flags}


def test_view_end_rows_count_their_outcomes_in_the_minute_they_are_judged_at():
    rows = [
        _ended(at_s=5, start_failure=True),
        _ended(at_s=59.999, exit_before_start=True),
        _ended(at_s=60, failed_after_start=True, started=True),
        _ended(at_s=61, started=True),  # watched and ended well: no outcome to count
        _ended(at_s=70, country=None, exit_before_start=True),
        _ended(None, at_s=70, start_failure=True),  # no title: its events count nowhere either
    ]
    assert outcome_counts(rows) == {
        ("vod-1", "tv", "DE", T0_S): {"start_failures": 1, "exits_before_start": 1, "failures_after_start": 0},
        ("vod-1", "tv", "DE", T0_S + 60): {"start_failures": 0, "exits_before_start": 0, "failures_after_start": 1},
        ("vod-1", "tv", UNKNOWN_COUNTRY, T0_S + 60): {"start_failures": 0, "exits_before_start": 1,
                                                      "failures_after_start": 0},
    }
    assert outcome_counts([]) == {}


def test_metrics_from_merged_sums():
    merged = merge_sums([VOD_1200, VOD_1201])
    assert merged == _sums(plays=5, startups=2, startup_ms_sum=1500, playing_seconds=50, stall_ms=2000, rebuffers=1,
                           bitrate_seconds_kbps=194_000, bitrate_seconds=50, quality_changes=2, upshifts=1,
                           downshifts=1, start_failures=1, exits_before_start=1, failures_after_start=1)
    metrics = qoe_metrics(merged)
    assert metrics == {
        "plays": 5, "startups": 2, "video_startup_time_ms": 750.0,
        "rebuffering_ratio": pytest.approx(2 / 52), "rebuffers": 1, "rebuffers_per_hour": 72.0,
        "average_bitrate_kbps": 3880.0, "upshift_share": 0.5, "downshift_share": 0.5,
        "start_failures": 1, "video_start_failure_rate": 0.2, "exits_before_start": 1,
        "exit_before_start_rate": 0.2, "failures_after_start": 1, "playback_failure_rate": 0.5,
    }


def test_metrics_without_denominators_are_none():
    metrics = qoe_metrics(_sums())
    assert metrics["video_startup_time_ms"] is None and metrics["rebuffering_ratio"] is None
    assert metrics["average_bitrate_kbps"] is None and metrics["playback_failure_rate"] is None


def test_each_ratio_is_defined_once_for_the_metrics_and_the_mart():
    assert [r.name for r in QOE_RATIOS] == [c.name for c in QOE_RATIO_COLUMNS]
    assert set(QOE_METRIC_NAMES) - set(QOE_FIELDS) == {r.name for r in QOE_RATIOS}
    assert list(qoe_metrics(_sums())) == list(QOE_METRIC_NAMES)
    for ratio in QOE_RATIOS:
        assert {t.field for t in (*ratio.numerator, *ratio.denominator)} <= set(QOE_FIELDS), ratio.name

"""View ends from hand-made sessions: the per-session rule (the reference the JVM processor is held to).

Contract: a session ends with ``explicit_end`` at its play_end or fatal error, and with ``heartbeat_timeout``
once the watermark passes its last event plus the heartbeat timeout; watch_seconds = 10 per playing heartbeat;
the row is a valid view_end envelope event with id ``ve-<session>``; the outcome flags follow the documented
definitions (a refused request is none of them). How the stream keeps the rule across micro-batches is in
``tests/spark/test_speed_view_end.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from speed_layer.view_end import (
    ENVELOPE_OUTPUT,
    OUTCOME_COLUMNS,
    QUERY,
    SESSION_COLUMNS,
    SessionTracker,
    session_view_ends,
    view_end_event,
    view_end_id,
)
from warehouse_models.events import TopicKind, format_timestamp, to_wire, validate_event
from warehouse_models.metrics.qoe import outcome_flags

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
TIMEOUT_MS = 30_000


def _event(event_type: str, session: str, seconds: float, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"{session}-{event_type}-{seconds:g}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{session}",
        "user_id": f"usr-{session}", "device_id": f"dev-{session}", "device_type": "tv", "country": "DE",
        "session_id": session, "content_id": "vod-1", "is_live": False,
    }
    event.update(fields)
    return event


def _heartbeat(session: str, seconds: float, position: float, state: str = "playing") -> dict[str, Any]:
    return _event("heartbeat", session, seconds, position_seconds=position, player_state=state, bitrate_kbps=3000)


def _session_explicit() -> list[dict[str, Any]]:
    """Plays 3 heartbeats (one paused), ends with play_end; one heartbeat is listed after the end (late)."""
    return [
        _event("play_request", "s-end", 0, position_seconds=0.0),
        _event("first_frame", "s-end", 1, startup_ms=1000),
        _heartbeat("s-end", 11, 10.0),
        _heartbeat("s-end", 31, 20.0, state="paused"),
        _event("play_end", "s-end", 35, position_seconds=24.0),
        _heartbeat("s-end", 21, 20.0),
    ]


def _session_timeout() -> list[dict[str, Any]]:
    return [
        _event("play_request", "s-gone", 0, position_seconds=50.0),
        _event("first_frame", "s-gone", 2, startup_ms=2000),
        _heartbeat("s-gone", 12, 60.0),
        _heartbeat("s-gone", 22, 70.0),
    ]


def _session_start_failure() -> list[dict[str, Any]]:
    return [
        _event("play_request", "s-fail", 0, position_seconds=0.0),
        _event("error", "s-fail", 4, error_code="MANIFEST_LOAD_FAILED", error_fatal=True),
    ]


def _pandas(events: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([{c: e.get(c) for c in SESSION_COLUMNS} for e in events], columns=list(SESSION_COLUMNS))
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def _expected(session: str, *, last_s: float, position: float | None, watch: float, end_reason: str,
              started: bool, start_failure: bool = False, exit_before_start: bool = False,
              failed_after_start: bool = False, outcome_s: float | None = None) -> dict[str, Any]:
    """A view_end row; ``outcome_s``: when QoE judges it (the explicit end; by default the last event)."""
    return {
        "event_id": f"ve-{session}", "schema_version": 1, "event_type": "view_end",
        "event_timestamp": pd.Timestamp(T0 + timedelta(seconds=last_s)), "account_id": f"acc-{session}",
        "user_id": f"usr-{session}", "device_id": f"dev-{session}", "device_type": "tv", "country": "DE",
        "session_id": session, "content_id": "vod-1", "is_live": False, "position_seconds": position,
        "watch_seconds": watch, "completion_pct": None, "end_reason": end_reason, "started": started,
        "start_failure": start_failure, "exit_before_start": exit_before_start,
        "failed_after_start": failed_after_start,
        "outcome_ms": int((T0 + timedelta(seconds=last_s if outcome_s is None else outcome_s)).timestamp() * 1000),
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if v is None or (isinstance(v, float) and pd.isna(v)) else v) for k, v in r.items()}
            for r in frame.to_dict("records")]


EXPLICIT = _expected("s-end", last_s=35, position=24.0, watch=20.0, end_reason="explicit_end", started=True,
                     outcome_s=35)
TIMED_OUT = _expected("s-gone", last_s=22, position=70.0, watch=20.0, end_reason="heartbeat_timeout", started=True)
START_FAILURE = _expected("s-fail", last_s=4, position=0.0, watch=0.0, end_reason="explicit_end", started=False,
                          start_failure=True)


def test_query_keeps_session_state_and_reads_playback():
    assert QUERY.name == "view_end"
    assert QUERY.topics == (TopicKind.PLAYBACK,)
    assert QUERY.stateful


def test_explicit_end_emits_at_once_with_watch_seconds_of_playing_heartbeats():
    out = session_view_ends("s-end", _pandas(_session_explicit()), watermark_ms=0, timeout_ms=TIMEOUT_MS)
    assert _records(out) == [EXPLICIT]


def test_session_without_end_times_out_only_after_the_watermark_passes_last_event_plus_timeout():
    events = _pandas(_session_timeout())
    last_ms = T0_MS + 22_000
    still_open = session_view_ends("s-gone", events, watermark_ms=last_ms + TIMEOUT_MS, timeout_ms=TIMEOUT_MS)
    assert still_open.empty
    out = session_view_ends("s-gone", events, watermark_ms=last_ms + TIMEOUT_MS + 1, timeout_ms=TIMEOUT_MS)
    assert _records(out) == [TIMED_OUT]


def test_fatal_error_before_first_frame_is_a_start_failure():
    out = session_view_ends("s-fail", _pandas(_session_start_failure()), watermark_ms=0, timeout_ms=TIMEOUT_MS)
    assert _records(out) == [START_FAILURE]


@pytest.mark.parametrize(("facts", "expected"), [
    # refused by the plan limit: none of the outcomes
    ({"requested": True, "first_frame_ms": None, "fatal_ms": 5, "fatal_code": "STREAM_LIMIT_REACHED",
      "play_end_ms": None}, (False, False, False, False)),
    # gave up before the first frame
    ({"requested": True, "first_frame_ms": None, "fatal_ms": None, "fatal_code": None, "play_end_ms": 9},
     (False, False, True, False)),
    # heartbeats never came after the request (timeout)
    ({"requested": True, "first_frame_ms": None, "fatal_ms": None, "fatal_code": None, "play_end_ms": None},
     (False, False, True, False)),
    # fatal error after the first frame
    ({"requested": True, "first_frame_ms": 3, "fatal_ms": 50, "fatal_code": "DECODER_CRASH", "play_end_ms": None},
     (True, False, False, True)),
    # a first frame after the play_end does not make the session started
    ({"requested": True, "first_frame_ms": 12, "fatal_ms": None, "fatal_code": None, "play_end_ms": 9},
     (False, False, True, False)),
    # an error after the play_end does not fail the session
    ({"requested": True, "first_frame_ms": 3, "fatal_ms": 70, "fatal_code": "CDN_HTTP_5XX", "play_end_ms": 60},
     (True, False, False, False)),
    # a session whose play request was not seen cannot be an exit before start
    ({"requested": False, "first_frame_ms": None, "fatal_ms": None, "fatal_code": None, "play_end_ms": 9},
     (False, False, False, False)),
])
def test_outcome_flags(facts: dict[str, Any], expected: tuple[bool, ...]):
    assert tuple(outcome_flags(**facts).values()) == expected
    assert tuple(outcome_flags(**facts)) == OUTCOME_COLUMNS


def test_rows_are_valid_view_end_envelope_events():
    rows = [EXPLICIT, TIMED_OUT, START_FAILURE]
    for row in rows:
        event = view_end_event({**row, "event_ms": int(row["event_timestamp"].timestamp() * 1000)})
        check = validate_event(to_wire(event), now=event["event_timestamp"])
        assert check.ok, check.reason
        assert set(event) <= set(ENVELOPE_OUTPUT)
        assert "completion_pct" not in event  # unknown duration: left out, not 0


def test_event_id_is_deterministic_and_fits_the_envelope():
    assert view_end_id("ses-1") == "ve-ses-1"
    long_id = view_end_id("s" * 64)
    assert long_id == view_end_id("s" * 64) and len(long_id) == 64 and long_id.startswith("ve-")


def test_completion_pct_when_the_duration_is_known():
    tracker = SessionTracker("s", is_live=False, duration_seconds=200.0, position_seconds=50.0)
    assert tracker.completion_pct() == 25.0
    assert SessionTracker("s", is_live=True, duration_seconds=200.0, position_seconds=50.0).completion_pct() is None

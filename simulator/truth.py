"""Ground truth of a simulated stream, recomputed from the events themselves.

Tests and demos compare what the speed, batch and serving layers report with these numbers. Everything is
derived from the event stream alone (plus, optionally, the planned spike and the end of the range), one event
at a time, so it works on a stream too large to hold in memory.

Definitions (kept simple and exact):

* **Watch seconds** of a user or a title: 10 seconds per ``heartbeat`` whose ``player_state`` is ``playing``
  (the heartbeat interval), so the total is exactly ``10 ×`` the number of playing heartbeats.
* **Views** of a title: sessions that rendered a ``first_frame``. **Sessions**: ``play_request`` events.
* **Concurrency**: a session is streaming from its first to its last heartbeat (both inclusive, by event
  time). Sessions of an account are taken in order of their first heartbeat; a session that starts while the
  account already streams ``max_streams`` sessions (from the account's ``user_upsert``) is over the limit.
* **Resume position** of (user, VOD title): the ``position_seconds`` of the newest playback event by event
  time that carries one (heartbeat, pause, seek, play_end, ...); on equal times the later event in the stream
  wins. Live sessions have no resume position.
* **Session outcomes**: ``refused`` (fatal ``STREAM_LIMIT_REACHED``), ``start_failure`` (another fatal error
  before a first frame), ``exit_before_start`` (``play_end`` without a first frame or error), ``failed``
  (fatal error after the first frame), ``ended`` (``play_end`` after the first frame), ``abandoned``
  (heartbeats stopped at least 30 s before the end of the range with no ``play_end``) and ``open`` (still
  heartbeating at the end of the range).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from simulator.sessions import HEARTBEAT_MS, STREAM_LIMIT_CODE, SpikePlan, epoch_ms
from warehouse_models.events import format_timestamp, parse_timestamp, topic_kind

logger = logging.getLogger(__name__)

ABANDON_AFTER_MS = 3 * HEARTBEAT_MS
"""A session whose last heartbeat is this much older than the end of the range was abandoned."""


def _ms(value: str) -> int:
    return epoch_ms(parse_timestamp(value))


def _iso(ms: int) -> str:
    return format_timestamp(datetime.fromtimestamp(ms // 1000, tz=timezone.utc) + timedelta(milliseconds=ms % 1000))


@dataclass(slots=True)
class _Session:
    account_id: str
    content_id: str
    start_ms: int
    first_frame: bool = False
    play_end: bool = False
    fatal: str | None = None
    first_hb: int | None = None
    last_hb: int | None = None


@dataclass(slots=True)
class TruthAccumulator:
    """Feed events one at a time with :meth:`add`; read the ground truth with :meth:`result`."""

    events_total: int = 0
    per_type: Counter[str] = field(default_factory=Counter)
    per_topic: Counter[str] = field(default_factory=Counter)
    first_ms: int | None = None
    last_ms: int | None = None
    watch_user: Counter[str] = field(default_factory=Counter)
    watch_content: Counter[str] = field(default_factory=Counter)
    playing_heartbeats: int = 0
    ctr: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    max_streams: dict[str, int] = field(default_factory=dict)
    resume: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)

    def add(self, event: Mapping[str, Any]) -> None:
        """Account for one event (a wire-form dict, as the simulator yields it)."""
        ms = _ms(event["event_timestamp"])
        kind = event["event_type"]
        self.events_total += 1
        self.per_type[kind] += 1
        self.per_topic[topic_kind(event).value] += 1
        self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
        self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)
        if kind == "user_upsert":
            self.max_streams[event["account_id"]] = int(event["max_streams"])
            return
        if kind in ("impression", "click"):
            counts = self.ctr.setdefault((event["rail_id"], event["button_id"]), [0, 0])
            counts[kind == "click"] += 1
            return
        session_id = event.get("session_id")
        if session_id is None or kind == "view_end":
            return
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = _Session(event["account_id"], event["content_id"], ms)
        if kind == "first_frame":
            session.first_frame = True
        elif kind == "play_end":
            session.play_end = True
        elif kind == "error" and event.get("error_fatal"):
            session.fatal = event["error_code"]
        elif kind == "heartbeat":
            session.first_hb = ms if session.first_hb is None else min(session.first_hb, ms)
            session.last_hb = ms if session.last_hb is None else max(session.last_hb, ms)
            if event["player_state"] == "playing":
                self.playing_heartbeats += 1
                self.watch_user[event["user_id"]] += HEARTBEAT_MS // 1000
                self.watch_content[event["content_id"]] += HEARTBEAT_MS // 1000
        position = event.get("position_seconds")
        if position is not None and not event.get("is_live"):
            key = (event["user_id"], event["content_id"])
            previous = self.resume.get(key)
            if previous is None or ms >= previous[0]:
                self.resume[key] = (ms, float(position))

    def _outcome(self, session: _Session, end_ms: int) -> str:
        if not session.first_frame:
            if session.fatal == STREAM_LIMIT_CODE:
                return "refused"
            if session.fatal is not None:
                return "start_failure"
            return "exit_before_start" if session.play_end else "open"
        if session.fatal is not None:
            return "failed"
        if session.play_end:
            return "ended"
        last = session.last_hb if session.last_hb is not None else session.start_ms
        return "abandoned" if last < end_ms - ABANDON_AFTER_MS else "open"

    def _violations(self) -> dict[str, dict[str, Any]]:
        by_account: dict[str, list[tuple[int, int, str]]] = {}
        for session_id, s in self.sessions.items():
            if s.first_hb is not None and s.last_hb is not None:
                by_account.setdefault(s.account_id, []).append((s.first_hb, s.last_hb, session_id))
        out: dict[str, dict[str, Any]] = {}
        for account_id in sorted(by_account):
            limit = self.max_streams.get(account_id)
            if limit is None:
                continue
            active: list[tuple[int, int, str]] = []
            over: list[str] = []
            peak = 0
            for first, last, session_id in sorted(by_account[account_id]):
                active = [a for a in active if a[1] >= first]
                if len(active) >= limit:
                    over.append(session_id)
                active.append((first, last, session_id))
                peak = max(peak, len(active))
            if over:
                out[account_id] = {"max_streams": limit, "peak_streams": peak, "over_limit_sessions": over}
        return out

    def _spike(self, spike: SpikePlan) -> dict[str, Any]:
        lo, hi = epoch_ms(spike.start), epoch_ms(spike.end)
        before_lo = lo - (hi - lo)
        joins = [s.start_ms for s in self.sessions.values() if s.content_id == spike.channel_id]
        return {
            **spike.to_dict(),
            "sessions_in_window": sum(1 for t in joins if lo <= t < hi),
            "sessions_in_previous_window": sum(1 for t in joins if before_lo <= t < lo),
        }

    def result(self, *, spike: SpikePlan | None = None, end: datetime | None = None) -> dict[str, Any]:
        """The ground truth as a JSON-ready dict (keys sorted where they are ids)."""
        end_ms = epoch_ms(end) if end is not None else (self.last_ms or 0) + 1
        resume: dict[str, dict[str, dict[str, Any]]] = {}
        for (user, content), (ms, pos) in sorted(self.resume.items()):
            resume.setdefault(user, {})[content] = {"position_seconds": pos, "event_timestamp": _iso(ms)}
        outcomes = Counter(self._outcome(s, end_ms) for s in self.sessions.values())
        views = Counter(s.content_id for s in self.sessions.values() if s.first_frame)
        return {
            "window": {
                "first_event": _iso(self.first_ms) if self.first_ms is not None else None,
                "last_event": _iso(self.last_ms) if self.last_ms is not None else None,
                "end": _iso(end_ms),
            },
            "events_total": self.events_total,
            "events_per_type": dict(sorted(self.per_type.items())),
            "events_per_topic": dict(sorted(self.per_topic.items())),
            "sessions": {"total": len(self.sessions), "with_first_frame": sum(views.values()),
                         "outcomes": dict(sorted(outcomes.items()))},
            "watch_seconds_definition": "10 s per heartbeat with player_state == playing",
            "watch_seconds_total": sum(self.watch_user.values()),
            "playing_heartbeats": self.playing_heartbeats,
            "watch_seconds_per_user": dict(sorted(self.watch_user.items())),
            "watch_seconds_per_content": dict(sorted(self.watch_content.items())),
            "views_per_content": dict(sorted(views.items())),
            "ctr": [
                {"rail_id": rail, "button_id": button, "impressions": counts[0], "clicks": counts[1]}
                for (rail, button), counts in sorted(self.ctr.items())
            ],
            "concurrency_violations": self._violations(),
            "resume_positions": resume,
            "spike": self._spike(spike) if spike is not None else None,
        }


def compute_truth(events: Iterable[Mapping[str, Any]], *, spike: SpikePlan | None = None,
                  end: datetime | None = None) -> dict[str, Any]:
    """Ground truth of a whole stream (see the module docstring for the definitions)."""
    acc = TruthAccumulator()
    for event in events:
        acc.add(event)
    return acc.result(spike=spike, end=end)


def write_truth(truth: Mapping[str, Any], path: Path) -> Path:
    """Write the ground truth as indented JSON (creating the directory); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    logger.info("ground truth written to %s", path)
    return path

"""Quality of experience per title, device type and country, in 1-minute event-time buckets.

Each bucket holds additive sums only (the fields of :data:`QOE_FIELDS`), so buckets merge exactly (the serving
layer adds the batch totals and the speed buckets at or after W); :func:`qoe_metrics` turns sums into the
ratios. The definitions, with formulas, are in ``docs/qoe.md``.

The sums of a bucket come from playback events whose event time falls in the minute (startup from
``first_frame``, stalls from ``buffer_end``, playing time and bitrate from playing heartbeats, shifts from
``quality_change``, plays from ``play_request``). The three session outcomes (start failures, exits before
start, failures after start) need to know what happened earlier in the session, which one minute's events do
not tell: so the query keeps, per slice (title, device type, country), the lifecycle of its open sessions and
judges each session once, with :func:`warehouse_models.metrics.sessions.outcome_flags` (the same definitions as the
view_end rows), in the bucket of the event that ended it (``play_end`` or fatal ``error``) or, for a session
that stopped sending events, in the bucket of its last event once the watermark passes it plus the heartbeat
timeout.

One stateful operator does both (``applyInPandasWithState``, event-time timeouts; the slices hashed into
``speed_state_groups`` keys, each holding many slices), so each
micro-batch emits the *whole* value of every bucket it changed and the writer sets it (``HSET``): replaying a
batch writes the same values. A bucket's sums stay in the state until the watermark passes its end plus the
heartbeat timeout (the last moment a timed-out session can still be judged into it), then it is final.

On a batch frame the same rules run as Spark aggregations (no Python per slice), with the watermark the
stream would have after reading the frame: the event sums per bucket, and each session judged once from its
earliest end and first facts. :func:`batch_buckets` runs :func:`qoe_step` itself over the same events; the
tests hold the two equal on a simulated world with every outcome (events at the very same millisecond as a
session's end count as before it in the batch form, in arrival order in the stream).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from warehouse_models.events import HEARTBEAT_INTERVAL_SECONDS, MAX_CLOCK_SKEW, PLAYBACK_TYPES, EventType
from warehouse_models.metrics.sessions import (
    STATE_GROUP,
    drop_resent,
    load_group,
    ordered_events,
    outcome_flag_columns,
    outcome_flags,
    state_group,
    store_group,
)
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS, SPEED_BUCKET_TTL_SECONDS, KeyLayout, bucket_start
from warehouse_models.redis_plan import Command, Plan, run, scan
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn
    from pyspark.sql.streaming.state import GroupState

logger = logging.getLogger(__name__)

QOE_FIELDS: tuple[str, ...] = (
    "plays", "startups", "startup_ms_sum", "playing_seconds", "stall_ms", "rebuffers", "bitrate_seconds_kbps",
    "bitrate_seconds", "quality_changes", "upshifts", "downshifts", "start_failures", "exits_before_start",
    "failures_after_start",
)
"""The additive sums of a bucket, in the order of the output columns and of docs/qoe.md."""

SLICE_COLUMNS: tuple[str, ...] = ("content_id", "device_type", "country")
UNKNOWN_COUNTRY = "unknown"
"""Slice value for events without a country (the field is optional)."""

EVENT_COLUMNS: tuple[str, ...] = (
    *SLICE_COLUMNS, "session_id", "event_type", "event_timestamp", "player_state", "bitrate_kbps",
    "previous_bitrate_kbps", "startup_ms", "stall_ms", "error_fatal", "error_code",
)
OUTPUT_DDL = ("content_id STRING, device_type STRING, country STRING, window_start TIMESTAMP, "
              + ", ".join(f"{name} BIGINT" for name in QOE_FIELDS))
STATE_DDL = "slices_json STRING"
"""A state group's state: its slices as JSON, ``[content_id, device_type, country]`` (JSON text) -> slice state."""

_MINUTE_MS = SPEED_BUCKET_SECONDS * 1000
_OUTCOME_FIELDS = {"start_failure": "start_failures", "exit_before_start": "exits_before_start",
                   "failed_after_start": "failures_after_start"}


# --- the per-slice step ------------------------------------------------------------------------------------------


@dataclass
class _Session:
    """The lifecycle facts of one open session (compact: a hot live slice holds thousands)."""

    requested: bool = False
    first_frame_ms: int | None = None
    fatal_ms: int | None = None
    fatal_code: str | None = None
    play_end_ms: int | None = None
    last_ms: int = 0
    judged: bool = False

    def flags(self) -> dict[str, bool]:
        return outcome_flags(requested=self.requested, first_frame_ms=self.first_frame_ms, fatal_ms=self.fatal_ms,
                             fatal_code=self.fatal_code, play_end_ms=self.play_end_ms)


@dataclass
class SliceState:
    """What the query keeps per slice: the open buckets' sums and the open sessions."""

    buckets: dict[int, dict[str, int]]
    """Bucket start (epoch s) -> sums."""
    sessions: dict[str, _Session]

    @classmethod
    def empty(cls) -> SliceState:
        return cls({}, {})

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> SliceState:
        """From :meth:`to_raw`'s form (decoded JSON)."""
        return cls({int(k): v for k, v in raw["buckets"].items()},
                   {k: _Session(*v) for k, v in raw["sessions"].items()})

    def to_raw(self) -> dict[str, Any]:
        """As plain JSON values."""
        sessions = {k: [s.requested, s.first_frame_ms, s.fatal_ms, s.fatal_code, s.play_end_ms, s.last_ms, s.judged]
                    for k, s in self.sessions.items()}
        return {"buckets": {str(k): v for k, v in self.buckets.items()}, "sessions": sessions}

    def next_timeout_ms(self, timeout_ms: int) -> int | None:
        """When the next session times out or the next bucket becomes final (event time, epoch ms)."""
        due = [s.last_ms + timeout_ms for s in self.sessions.values()]
        due += [bucket * 1000 + _MINUTE_MS + timeout_ms for bucket in self.buckets]
        return min(due) if due else None


def _bucket_of(ms: int) -> int:
    return ms // _MINUTE_MS * SPEED_BUCKET_SECONDS


def _judge(state: SliceState, session: _Session, at_ms: int, changed: set[int]) -> None:
    """Count a session's outcome once, in the bucket of ``at_ms``."""
    session.judged = True
    bucket = _bucket_of(at_ms)
    sums = state.buckets.setdefault(bucket, dict.fromkeys(QOE_FIELDS, 0))
    for flag, value in session.flags().items():
        if value and flag in _OUTCOME_FIELDS:
            sums[_OUTCOME_FIELDS[flag]] += 1
            changed.add(bucket)


def qoe_step(state: SliceState, events: Iterable[Mapping[str, Any]], *, watermark_ms: int,
             timeout_ms: int) -> dict[int, dict[str, int]]:
    """Fold one slice's new events into its state; return the whole sums of every bucket that changed.

    Args:
        state: the slice's state, updated in place (sessions judged and dropped, final buckets dropped).
        events: the new events, oldest first, each with ``ms`` (as :func:`ordered_events` gives them).
        watermark_ms: the event-time watermark: sessions silent since before it minus ``timeout_ms`` are
            judged as timed out; buckets that ended before it minus ``timeout_ms`` are final and dropped.
        timeout_ms: the heartbeat timeout.
    """
    changed: set[int] = set()
    for event in events:
        ms = int(event["ms"])
        bucket = _bucket_of(ms)
        sums = state.buckets.setdefault(bucket, dict.fromkeys(QOE_FIELDS, 0))
        changed.add(bucket)
        session_id = str(event["session_id"])
        session = state.sessions.setdefault(session_id, _Session(last_ms=ms))
        session.last_ms = max(session.last_ms, ms)
        kind = event["event_type"]
        ends = False
        if kind == EventType.PLAY_REQUEST:
            sums["plays"] += 1
            session.requested = True
        elif kind == EventType.FIRST_FRAME:
            sums["startups"] += 1
            sums["startup_ms_sum"] += int(event.get("startup_ms") or 0)
            session.first_frame_ms = ms if session.first_frame_ms is None else min(session.first_frame_ms, ms)
        elif kind == EventType.HEARTBEAT and event.get("player_state") == "playing":
            seconds = HEARTBEAT_INTERVAL_SECONDS
            sums["playing_seconds"] += seconds
            if event.get("bitrate_kbps") is not None:
                sums["bitrate_seconds_kbps"] += int(event["bitrate_kbps"]) * seconds
                sums["bitrate_seconds"] += seconds
        elif kind == EventType.BUFFER_END:
            sums["rebuffers"] += 1
            sums["stall_ms"] += int(event.get("stall_ms") or 0)
        elif kind == EventType.QUALITY_CHANGE:
            sums["quality_changes"] += 1
            now, before = event.get("bitrate_kbps"), event.get("previous_bitrate_kbps")
            if now is not None and before is not None:
                sums["upshifts"] += int(now > before)
                sums["downshifts"] += int(now < before)
        elif kind == EventType.ERROR and event.get("error_fatal"):
            if session.fatal_ms is None or ms < session.fatal_ms:
                session.fatal_ms, session.fatal_code = ms, event.get("error_code")
            ends = True
        elif kind == EventType.PLAY_END:
            session.play_end_ms = ms if session.play_end_ms is None else min(session.play_end_ms, ms)
            ends = True
        if ends and not session.judged:
            _judge(state, session, ms, changed)

    for session_id, session in list(state.sessions.items()):
        if session.last_ms + timeout_ms < watermark_ms:
            if not session.judged:
                _judge(state, session, session.last_ms, changed)
            del state.sessions[session_id]
    out = {bucket: dict(state.buckets[bucket]) for bucket in sorted(changed)}
    for bucket in list(state.buckets):
        if bucket * 1000 + _MINUTE_MS + timeout_ms < watermark_ms:
            del state.buckets[bucket]
    return out


def _row_dicts(key: tuple[Any, ...], buckets: Mapping[int, Mapping[str, int]]) -> list[dict[str, Any]]:
    content_id, device_type, country = (str(k) for k in key)
    return [{"content_id": content_id, "device_type": device_type, "country": country,
             "window_start": pd.Timestamp(bucket, unit="s", tz="UTC"), **{f: int(sums[f]) for f in QOE_FIELDS}}
            for bucket, sums in buckets.items()]


def _rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["content_id", "device_type", "country", "window_start", *QOE_FIELDS])


def load_slices(state: GroupState) -> dict[tuple[str, str, str], SliceState]:
    """The slices a state group holds (none for a new group): (content_id, device_type, country) -> state."""
    return {tuple(json.loads(key)): SliceState.from_raw(raw) for key, raw in load_group(state).items()}


def qoe_group_step(key: tuple[Any, ...], frames: Iterator[pd.DataFrame], state: GroupState, *,
                   timeout_ms: int) -> Iterator[pd.DataFrame]:
    """The ``applyInPandasWithState`` function of one state group (many slices, see ``speed_state_groups``): each
    slice's new events in (:func:`qoe_step`), the whole sums of every bucket that changed out.

    Slices without new events are stepped too, so their timed-out sessions are judged and their final buckets
    dropped in the batch where the watermark passes them; Spark calls the group when its earliest deadline passes.
    """
    slices = load_slices(state)
    by_slice: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    if not state.hasTimedOut:
        for event in ordered_events(frames):
            slice_key = (str(event["content_id"]), str(event["device_type"]), str(event["country"]))
            by_slice.setdefault(slice_key, []).append(event)
    watermark_ms = state.getCurrentWatermarkMs()
    rows: list[dict[str, Any]] = []
    due: list[int] = []
    for slice_key in sorted(set(slices) | set(by_slice)):
        slice_state = slices.get(slice_key) or SliceState.empty()
        changed = qoe_step(slice_state, by_slice.get(slice_key, []), watermark_ms=watermark_ms, timeout_ms=timeout_ms)
        next_ms = slice_state.next_timeout_ms(timeout_ms)
        if next_ms is None:
            slices.pop(slice_key, None)
        else:
            slices[slice_key] = slice_state
            due.append(next_ms)
        rows.extend(_row_dicts(slice_key, changed))
    store_group(state, {json.dumps(list(k)): s.to_raw() for k, s in slices.items()}, due)
    if rows:
        yield _rows(rows)


def batch_buckets(events: Iterable[Mapping[str, Any]], *, watermark_ms: int,
                  timeout_ms: int) -> dict[tuple[str, str, str], dict[int, dict[str, int]]]:
    """The batch result computed in Python, slice by slice, with :func:`qoe_step`: the reference the Spark batch
    transform (:func:`qoe_rows` on a batch frame) is tested against. Slice -> bucket start (epoch s) -> sums."""
    by_slice: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for event in sorted(events, key=lambda e: int(e["ms"])):
        by_slice.setdefault((str(event["content_id"]), str(event["device_type"]), str(event["country"])),
                            []).append(event)
    return {key: qoe_step(SliceState.empty(), rows, watermark_ms=watermark_ms, timeout_ms=timeout_ms)
            for key, rows in by_slice.items()}


def _bucket_start(ms: SparkColumn) -> SparkColumn:
    """The start of the 1-minute bucket holding an epoch-ms column, as a timestamp."""
    from pyspark.sql import functions as F

    return F.timestamp_seconds(F.floor(ms / F.lit(_MINUTE_MS)) * F.lit(SPEED_BUCKET_SECONDS))


def _batch_qoe_rows(rows: DataFrame, *, lateness_s: int, timeout_ms: int) -> DataFrame:
    """:func:`qoe_step` on a whole batch frame as Spark aggregations (no Python per slice): the same sums.

    The event sums add up per bucket. Each session is judged once: at its end (the earliest ``play_end`` or fatal
    error) with the facts up to it, or, without an end, at its last event when that is more than the heartbeat
    timeout before the frame's watermark (newest event time minus the allowed lateness); otherwise it is still
    open and not judged, as in the stream. The outcome flags are :func:`outcome_flags` written as columns.
    """
    from pyspark.sql import functions as F

    ms = F.unix_millis(F.col("event_timestamp"))
    kind = F.col("event_type")
    playing = (kind == EventType.HEARTBEAT.value) & (F.col("player_state") == "playing")
    rated = playing & F.col("bitrate_kbps").isNotNull()
    shift = (kind == EventType.QUALITY_CHANGE.value) & F.col("bitrate_kbps").isNotNull() & F.col(
        "previous_bitrate_kbps").isNotNull()
    fatal = (kind == EventType.ERROR.value) & F.coalesce(F.col("error_fatal"), F.lit(False))
    seconds = HEARTBEAT_INTERVAL_SECONDS

    def count(condition: SparkColumn) -> SparkColumn:
        return F.count_if(condition).cast("long")

    def total(condition: SparkColumn, value: SparkColumn) -> SparkColumn:
        return F.coalesce(F.sum(F.when(condition, value.cast("long"))), F.lit(0)).cast("long")

    event_sums = rows.groupBy(*SLICE_COLUMNS, _bucket_start(ms).alias("window_start")).agg(
        count(kind == EventType.PLAY_REQUEST.value).alias("plays"),
        count(kind == EventType.FIRST_FRAME.value).alias("startups"),
        total(kind == EventType.FIRST_FRAME.value, F.coalesce(F.col("startup_ms"), F.lit(0))).alias("startup_ms_sum"),
        (count(playing) * seconds).alias("playing_seconds"),
        total(rated, F.col("bitrate_kbps") * seconds).alias("bitrate_seconds_kbps"),
        (count(rated) * seconds).alias("bitrate_seconds"),
        count(kind == EventType.BUFFER_END.value).alias("rebuffers"),
        total(kind == EventType.BUFFER_END.value, F.coalesce(F.col("stall_ms"), F.lit(0))).alias("stall_ms"),
        count(kind == EventType.QUALITY_CHANGE.value).alias("quality_changes"),
        count(shift & (F.col("bitrate_kbps") > F.col("previous_bitrate_kbps"))).alias("upshifts"),
        count(shift & (F.col("bitrate_kbps") < F.col("previous_bitrate_kbps"))).alias("downshifts"),
    )

    front = rows.agg((F.max(ms) - F.lit(lateness_s * 1000)).alias("_watermark_ms"))
    sessions = rows.withColumn("_ms", ms).groupBy(*SLICE_COLUMNS, "session_id").agg(
        F.min(F.when(kind == EventType.PLAY_REQUEST.value, F.col("_ms"))).alias("request_ms"),
        F.min(F.when(kind == EventType.FIRST_FRAME.value, F.col("_ms"))).alias("first_frame_ms"),
        F.min(F.when(fatal, F.struct(F.col("_ms").alias("ms"), F.col("error_code").alias("code")))).alias("_fatal"),
        F.min(F.when(kind == EventType.PLAY_END.value, F.col("_ms"))).alias("play_end_ms"),
        F.max("_ms").alias("last_ms"),
    )
    fatal_ms, fatal_code = F.col("_fatal.ms"), F.col("_fatal.code")
    end_ms = F.least(F.col("play_end_ms"), fatal_ms)
    requested = F.col("request_ms").isNotNull() & (end_ms.isNull() | (F.col("request_ms") <= end_ms))
    flags = outcome_flag_columns(requested=requested, first_frame_ms=F.col("first_frame_ms"), fatal_ms=fatal_ms,
                                 fatal_code=fatal_code, play_end_ms=F.col("play_end_ms"))
    judged_ms = F.when(end_ms.isNotNull(), end_ms).when(F.col("last_ms") + F.lit(timeout_ms) < F.col("_watermark_ms"),
                                                         F.col("last_ms"))
    outcomes = (
        sessions.crossJoin(front)
        .where(judged_ms.isNotNull())
        .groupBy(*SLICE_COLUMNS, _bucket_start(judged_ms).alias("window_start"))
        .agg(count(flags["start_failure"]).alias("start_failures"),
             count(flags["exit_before_start"]).alias("exits_before_start"),
             count(flags["failed_after_start"]).alias("failures_after_start"))
    )
    keys = [*SLICE_COLUMNS, "window_start"]
    joined = event_sums.join(outcomes, keys, "left")
    return joined.select(*keys, *(F.coalesce(F.col(name), F.lit(0)).cast("long").alias(name) for name in QOE_FIELDS))


# --- the transform ------------------------------------------------------------------------------------------------


def qoe_rows(events: DataFrame, settings: Settings) -> DataFrame:
    """Valid events -> QoE sums per (content_id, device_type, country, window_start) minute (:data:`OUTPUT_DDL`).

    Streaming: the whole sums of every bucket a micro-batch changed (update output). Batch: every bucket of
    the frame, with the sessions still open at the frame's watermark not judged yet (as the stream would).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.streaming.state import GroupStateTimeout

    lateness = settings.speed_allowed_lateness_seconds
    timeout_ms = settings.speed_heartbeat_timeout_seconds * 1000
    playback = sorted(t.value for t in PLAYBACK_TYPES)
    rows = (drop_resent(events.withWatermark("event_timestamp", f"{lateness} seconds"))
            .where(F.col("event_type").isin(playback) & F.col("session_id").isNotNull()
                   & F.col("content_id").isNotNull() & F.col("device_type").isNotNull())
            .withColumn("country", F.coalesce(F.col("country"), F.lit(UNKNOWN_COUNTRY)))
            .select(*EVENT_COLUMNS))
    if rows.isStreaming:
        def stateful_step(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
                          state: GroupState) -> Iterator[pd.DataFrame]:
            return qoe_group_step(key, frames, state, timeout_ms=timeout_ms)

        groups = rows.withColumn(STATE_GROUP, state_group([F.col(c) for c in SLICE_COLUMNS],
                                                          settings.speed_state_groups))
        return groups.groupBy(STATE_GROUP).applyInPandasWithState(
            stateful_step, OUTPUT_DDL, STATE_DDL, "update", GroupStateTimeout.EventTimeTimeout)

    return _batch_qoe_rows(rows, lateness_s=lateness, timeout_ms=timeout_ms)


# --- sink and readers -------------------------------------------------------------------------------------------


def qoe_buckets(keys: KeyLayout, content_id: str, *, device_type: str = "*", country: str = "*",
                since: int | None = None, until: int | None = None, now_epoch: float | None = None
                ) -> Plan[dict[tuple[str, str, int], dict[str, int]]]:
    """The QoE buckets of one title: (device type, country, bucket start) -> sums; ``*`` matches any.

    One slice read from ``since`` builds its minute keys from ``since`` to now (one pipeline); otherwise the keys
    are found with ``SCAN`` (the whole keyspace: for the dashboard and reconciliation, not an app's request).

    Args:
        since: only buckets starting at or after this epoch second (e.g. the batch watermark W).
        until: only buckets starting before this epoch second (e.g. the end of an hour being reconciled).
        now_epoch: the reader's clock for the one-slice read (default: the wall clock).
    """
    if "*" not in (device_type, country) and since is not None:
        now = time.time() if now_epoch is None else now_epoch
        first = bucket_start(max(since, now - SPEED_BUCKET_TTL_SECONDS))
        last = bucket_start(now + MAX_CLOCK_SKEW.total_seconds())
        if until is not None:
            last = min(last, bucket_start(until - 1))
        found = [keys.qoe_bucket(content_id, device_type, country, bucket)
                 for bucket in range(first, last + SPEED_BUCKET_SECONDS, SPEED_BUCKET_SECONDS)]
    else:
        pattern = keys.qoe_bucket(content_id, device_type, country, 0).rsplit(":b:", 1)[0] + ":b:*"
        found = sorted((yield from scan(pattern)))
    replies = yield [Command("HGETALL", key) for key in found]
    out: dict[tuple[str, str, int], dict[str, int]] = {}
    for key, values in zip(found, replies, strict=True):
        if not values:
            continue
        _, device, ctry, _, bucket = key.rsplit(":", 4)
        if (since is not None and int(bucket) < since) or (until is not None and int(bucket) >= until):
            continue
        sums = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in values.items()}
        out[(device, ctry, int(bucket))] = {name: sums.get(name, 0) for name in QOE_FIELDS}
    return out


def read_qoe(client: redis.Redis, keys: KeyLayout, content_id: str, *, device_type: str = "*", country: str = "*",
             since: int | None = None, until: int | None = None) -> dict[tuple[str, str, int], dict[str, int]]:
    """:func:`qoe_buckets` with a blocking client."""
    return run(client, qoe_buckets(keys, content_id, device_type=device_type, country=country, since=since,
                                   until=until))


def merge_sums(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Add buckets (or batch totals and buckets): exact, since every field is a sum."""
    total = dict.fromkeys(QOE_FIELDS, 0)
    for part in parts:
        for name in QOE_FIELDS:
            total[name] += int(part.get(name, 0))
    return total


@dataclass(frozen=True)
class Term:
    """One part of a ratio's numerator or denominator: ``sums[field] * times / per``."""

    field: str
    times: float = 1.0
    per: float = 1.0


@dataclass(frozen=True)
class Ratio:
    """A QoE ratio of docs/qoe.md: the sum of its numerator's terms over the sum of its denominator's, or None when
    the denominator is zero. Python (:func:`qoe_metrics`) and Spark (:func:`qoe_ratio_columns`) evaluate it with
    the same floating-point operations in the same order, so both give the very same doubles."""

    name: str
    numerator: tuple[Term, ...]
    denominator: tuple[Term, ...]


_STALL_SECONDS = Term("stall_ms", per=1000.0)
QOE_RATIOS: tuple[Ratio, ...] = (
    Ratio("video_startup_time_ms", (Term("startup_ms_sum"),), (Term("startups"),)),
    Ratio("rebuffering_ratio", (_STALL_SECONDS,), (_STALL_SECONDS, Term("playing_seconds"))),
    Ratio("rebuffers_per_hour", (Term("rebuffers", times=3600.0),), (Term("playing_seconds"),)),
    Ratio("average_bitrate_kbps", (Term("bitrate_seconds_kbps"),), (Term("bitrate_seconds"),)),
    Ratio("upshift_share", (Term("upshifts"),), (Term("quality_changes"),)),
    Ratio("downshift_share", (Term("downshifts"),), (Term("quality_changes"),)),
    Ratio("video_start_failure_rate", (Term("start_failures"),), (Term("plays"),)),
    Ratio("exit_before_start_rate", (Term("exits_before_start"),), (Term("plays"),)),
    Ratio("playback_failure_rate", (Term("failures_after_start"),), (Term("startups"),)),
)
"""The ratios, each defined once, in the order of the QoE mart's ratio columns."""

QOE_METRIC_NAMES: tuple[str, ...] = (
    "plays", "startups", "video_startup_time_ms", "rebuffering_ratio", "rebuffers", "rebuffers_per_hour",
    "average_bitrate_kbps", "upshift_share", "downshift_share", "start_failures", "video_start_failure_rate",
    "exits_before_start", "exit_before_start_rate", "failures_after_start", "playback_failure_rate",
)
"""The keys of :func:`qoe_metrics`, in order: the ratios of :data:`QOE_RATIOS` and the counts shown beside them."""


def _python_sum(terms: tuple[Term, ...], sums: Mapping[str, int]) -> float:
    total: float | None = None
    for term in terms:
        value = float(sums[term.field]) * term.times / term.per
        total = value if total is None else total + value
    assert total is not None, "a ratio has at least one term on each side"
    return total


def qoe_metrics(sums: Mapping[str, int]) -> dict[str, float | int | None]:
    """The QoE ratios of merged sums (None where the denominator is zero); formulas in docs/qoe.md."""
    s = {name: int(sums.get(name, 0)) for name in QOE_FIELDS}
    values: dict[str, float | int | None] = dict(s)
    for ratio in QOE_RATIOS:
        denominator = _python_sum(ratio.denominator, s)
        values[ratio.name] = _python_sum(ratio.numerator, s) / denominator if denominator != 0 else None
    return {name: values[name] for name in QOE_METRIC_NAMES}


def qoe_ratio_columns() -> list[SparkColumn]:
    """The ratios of :data:`QOE_RATIOS` as Spark columns over a frame with the :data:`QOE_FIELDS` sums (not null),
    named as in :func:`qoe_metrics`: the same values, computed in the JVM."""
    from pyspark.sql import functions as F

    def spark_sum(terms: tuple[Term, ...]) -> SparkColumn:
        total: SparkColumn | None = None
        for term in terms:
            value = F.col(term.field).cast("double") * F.lit(term.times) / F.lit(term.per)
            total = value if total is None else total + value
        assert total is not None, "a ratio has at least one term on each side"
        return total

    return [F.when(spark_sum(r.denominator) != F.lit(0.0), spark_sum(r.numerator) / spark_sum(r.denominator))
            .alias(r.name) for r in QOE_RATIOS]

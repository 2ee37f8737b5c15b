"""Quality of experience per title, device type and country, in 1-minute event-time buckets.

Each bucket holds additive sums only (the fields of :data:`QOE_FIELDS`), so buckets merge exactly (the serving
layer adds the batch totals and the speed buckets at or after W); :func:`qoe_metrics` turns sums into the
ratios. The definitions, with formulas, are in ``docs/qoe.md``.

The sums of a bucket come from playback events whose event time falls in the minute (startup from
``first_frame``, stalls from ``buffer_end``, playing time and bitrate from playing heartbeats, shifts from
``quality_change``, plays from ``play_request``): what each event adds is :data:`EVENT_CONTRIBUTIONS`, a view
without session state. The three session outcomes (start failures, exits before start, failures after start)
need to know what happened earlier in the session, which one minute's events do not tell: each session is judged
once, with :func:`warehouse_models.metrics.sessions.outcome_flags`, in the bucket of its end (the earliest
``play_end`` or fatal ``error``) or, for a session that stopped sending events, in the bucket of its last event
once the watermark passes it plus the heartbeat timeout. That is the view_end rule, so the speed layer takes the
outcomes from its view_end query (session state in the JVM): :func:`outcome_counts` turns view_end rows into the
counts each bucket gains. Both parts are additive, so the speed layer adds them under its batch-id fences.

On a batch frame (:func:`qoe_rows`, the batch layer's QoE mart and reconciliation) the event sums are the same
contributions reduced by Spark, and each session is judged from its earliest end and first facts, with the
watermark the stream would have after reading the frame. :func:`qoe_step` is the rule in Python, slice by slice:
the tests hold the Spark form to it on a simulated world with every outcome, and hold the view_end outcomes to the
Spark form.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse_models.events import HEARTBEAT_INTERVAL_SECONDS, MAX_CLOCK_SKEW, PLAYBACK_TYPES, EventType
from warehouse_models.metrics.contributions import Contributions, reduce_frame, window_start
from warehouse_models.metrics.sessions import outcome_flag_columns, outcome_flags
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS, SPEED_BUCKET_TTL_SECONDS, KeyLayout, bucket_start
from warehouse_models.redis_plan import Command, Plan, run, scan
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn

logger = logging.getLogger(__name__)

QOE_FIELDS: tuple[str, ...] = (
    "plays", "startups", "startup_ms_sum", "playing_seconds", "stall_ms", "rebuffers", "bitrate_seconds_kbps",
    "bitrate_seconds", "quality_changes", "upshifts", "downshifts", "start_failures", "exits_before_start",
    "failures_after_start",
)
"""The additive sums of a bucket, in the order of the output columns and of docs/qoe.md."""

OUTCOME_FIELDS: tuple[str, ...] = ("start_failures", "exits_before_start", "failures_after_start")
"""The sums counted per judged session (from view_end rows in the speed layer)."""
EVENT_FIELDS: tuple[str, ...] = tuple(name for name in QOE_FIELDS if name not in OUTCOME_FIELDS)
"""The sums each playback event adds on its own (:data:`EVENT_CONTRIBUTIONS`)."""

SLICE_COLUMNS: tuple[str, ...] = ("content_id", "device_type", "country")
UNKNOWN_COUNTRY = "unknown"
"""Slice value for events without a country (the field is optional)."""

EVENT_COLUMNS: tuple[str, ...] = (
    *SLICE_COLUMNS, "session_id", "event_type", "event_timestamp", "player_state", "bitrate_kbps",
    "previous_bitrate_kbps", "startup_ms", "stall_ms", "error_fatal", "error_code",
)

_MINUTE_MS = SPEED_BUCKET_SECONDS * 1000
_OUTCOME_FIELDS = {"start_failure": "start_failures", "exit_before_start": "exits_before_start",
                   "failed_after_start": "failures_after_start"}
"""Outcome flag (:func:`outcome_flags`) -> the sum it counts in."""


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


# --- what each event adds, and what each judged session adds -----------------------------------------------------


def _event_where() -> SparkColumn:
    from pyspark.sql import functions as F

    return (F.col("event_type").isin(sorted(t.value for t in PLAYBACK_TYPES)) & F.col("session_id").isNotNull()
            & F.col("content_id").isNotNull() & F.col("device_type").isNotNull())


def _event_columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    playing = (kind == EventType.HEARTBEAT.value) & (F.col("player_state") == "playing")
    rated = playing & F.col("bitrate_kbps").isNotNull()
    shift = ((kind == EventType.QUALITY_CHANGE.value) & F.col("bitrate_kbps").isNotNull()
             & F.col("previous_bitrate_kbps").isNotNull())
    seconds = F.lit(HEARTBEAT_INTERVAL_SECONDS)

    def value(condition: SparkColumn, amount: SparkColumn | int = 1) -> SparkColumn:
        amount = amount if not isinstance(amount, int) else F.lit(amount)
        return F.when(condition, amount.cast("long")).otherwise(F.lit(0)).cast("long")

    values = {
        "plays": value(kind == EventType.PLAY_REQUEST.value),
        "startups": value(kind == EventType.FIRST_FRAME.value),
        "startup_ms_sum": value(kind == EventType.FIRST_FRAME.value, F.coalesce(F.col("startup_ms"), F.lit(0))),
        "playing_seconds": value(playing, seconds),
        "stall_ms": value(kind == EventType.BUFFER_END.value, F.coalesce(F.col("stall_ms"), F.lit(0))),
        "rebuffers": value(kind == EventType.BUFFER_END.value),
        "bitrate_seconds_kbps": value(rated, F.col("bitrate_kbps").cast("long") * seconds),
        "bitrate_seconds": value(rated, seconds),
        "quality_changes": value(kind == EventType.QUALITY_CHANGE.value),
        "upshifts": value(shift & (F.col("bitrate_kbps") > F.col("previous_bitrate_kbps"))),
        "downshifts": value(shift & (F.col("bitrate_kbps") < F.col("previous_bitrate_kbps"))),
    }
    return {
        "content_id": F.col("content_id"),
        "device_type": F.col("device_type"),
        "country": F.coalesce(F.col("country"), F.lit(UNKNOWN_COUNTRY)),
        # One window per speed bucket, so a window's values are exactly one bucket's fields.
        "start": window_start(SPEED_BUCKET_SECONDS),
        **{name: values[name] for name in EVENT_FIELDS},
    }


EVENT_CONTRIBUTIONS = Contributions(where=_event_where, columns=_event_columns, keys=(*SLICE_COLUMNS, "start"),
                                    sums=EVENT_FIELDS)
"""Per playback event of a session: its slice and minute, and what it adds to each of :data:`EVENT_FIELDS` (zeros
for the events that add nothing: the batch transform then has a row, of zeros, for every minute with an event of
the slice; the speed layer adds only what is not zero, so Redis has no key for such a minute)."""


def outcome_counts(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, int], dict[str, int]]:
    """Judged sessions -> what each QoE bucket gains: (content_id, device_type, country, bucket start) ->
    :data:`OUTCOME_FIELDS` counts (only the buckets that gain something).

    Each row is one session judged once (a view_end row): its slice, ``outcome_ms`` (the event time it is judged
    at: its end, or its last event for a timeout) and its outcome flags. Rows without a title or a device type
    count nowhere, as their events do not.
    """
    out: dict[tuple[str, str, str, int], dict[str, int]] = {}
    for row in rows:
        if row.get("content_id") is None or row.get("device_type") is None:
            continue
        flagged = [field for flag, field in _OUTCOME_FIELDS.items() if row.get(flag)]
        if not flagged:
            continue
        country = row.get("country")
        key = (str(row["content_id"]), str(row["device_type"]), UNKNOWN_COUNTRY if country is None else str(country),
               _bucket_of(int(row["outcome_ms"])))
        counts = out.setdefault(key, dict.fromkeys(OUTCOME_FIELDS, 0))
        for field in flagged:
            counts[field] += 1
    return out


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
    fatal = (kind == EventType.ERROR.value) & F.coalesce(F.col("error_fatal"), F.lit(False))

    def count(condition: SparkColumn) -> SparkColumn:
        return F.count_if(condition).cast("long")

    event_sums = reduce_frame(rows, EVENT_CONTRIBUTIONS).select(
        *SLICE_COLUMNS, F.timestamp_seconds("start").alias("window_start"), *EVENT_FIELDS)

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
    """Valid events (a batch frame) -> QoE sums per (content_id, device_type, country, window_start) minute: every
    bucket of the frame, with the sessions still open at the frame's watermark not judged yet (as the stream
    would). The speed layer runs the same definitions as two views (see the module's docstring)."""
    from pyspark.sql import functions as F

    if events.isStreaming:
        raise ValueError("qoe_rows takes a batch frame; the speed layer adds EVENT_CONTRIBUTIONS and the view_end "
                         "outcomes (speed_layer.qoe)")
    lateness = settings.speed_allowed_lateness_seconds
    timeout_ms = settings.speed_heartbeat_timeout_seconds * 1000
    rows = (events.where(_event_where())
            .withColumn("country", F.coalesce(F.col("country"), F.lit(UNKNOWN_COUNTRY)))
            .select(*EVENT_COLUMNS))
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

"""Computed view ends: one ``view_end`` event per viewing session, sent to the derived topic.

Per session the query keeps, in Spark's state store (RocksDB), who watched what where (account, user, device,
country, title, live or not), the last event time, the last position, the count of playing heartbeats
and the lifecycle facts (play request seen, first frame, first fatal error and its code, explicit ``play_end``).
The streaming query keeps them in the JVM: ``transformWithState`` keyed by session (``reelytics.speed.ViewEnd`` in
``speed_layer/jvm``, compiled by ``infra.jvm``), one state value and one event-time timer per open session, so no
Python runs per session or per event. :class:`SessionTracker` is the same rule in Python: the batch transform runs
it, and the tests hold the two to each other. A session ends:

* **explicit_end** at once, in the micro-batch where its ``play_end`` or a fatal ``error`` arrives (its state stays
  until the timeout, so stragglers do not end it twice);
* **heartbeat_timeout** when the event-time watermark passes its last event plus
  ``speed_heartbeat_timeout_seconds`` with no explicit end (the session's timer, at that moment, fires in the first
  micro-batch whose watermark has passed it).

The row is a valid ``view_end`` envelope event: ``event_id`` is ``ve-<session id>`` (a digest when that would
be too long), so a replayed micro-batch or a restarted query sends the same id and consumers keep one;
``event_timestamp`` is the session's last event time; ``position_seconds`` the newest position by event time;
``watch_seconds`` 10 s per heartbeat with ``player_state == "playing"`` (the simulator's ground truth);
``completion_pct`` is last position over duration in percent when the title's duration is known (pass a
``durations`` frame, e.g. from the catalog) and the title is not live, otherwise null: playback events do not
carry the duration, so the streaming query leaves it null.

Besides the envelope columns, the transform's rows carry the session's outcome for QoE and the time it is judged
at (``outcome_ms``: the end, or the last event for a timeout): the writer adds them to the QoE buckets
(:func:`speed_layer.qoe.write_outcomes`) and leaves them out of the Kafka records, which hold envelope fields only.
They are judged on the facts up to the end (the first ``play_end`` or fatal error by event time; for a timeout,
everything seen):

* ``started``: a ``first_frame`` at or before the end;
* ``start_failure``: ended by a fatal error without a first frame before it, except a refused request
  (``STREAM_LIMIT_REACHED``: the account already streams its plan's limit, a business rule, not a failure);
* ``exit_before_start``: its ``play_request`` was seen, no first frame and no fatal error, and it ended (the
  viewer gave up: ``play_end`` or heartbeats never came);
* ``failed_after_start``: ended by a fatal error at or after the first frame.

A session whose state was dropped after a timeout and that sends events again (heartbeats after more than
the timeout of silence) is tracked anew and ends again with the same ``event_id``; consumers keep the first.

The derived topic receives envelope events only; the batch layer reads them from there like any other topic.
The writer sends them from the driver (one kafka-python producer per process, waiting for the broker's
acknowledgement before the micro-batch commits): at-least-once (a replayed micro-batch sends its rows again); the
deterministic ``event_id`` makes that harmless downstream.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd

from infra.process import ServiceError
from speed_layer.qoe import write_outcomes
from speed_layer.query import SinkContext, ViewQuery, collect_rows, produce_all
from warehouse_models.events import (
    HEARTBEAT_INTERVAL_SECONDS,
    MAX_ID_LENGTH,
    PLAYBACK_TYPES,
    SCHEMA_VERSION,
    EventType,
    TopicKind,
    encode,
    kafka_key,
    to_wire,
    validate_event,
)
from warehouse_models.metrics.sessions import (
    drop_resent,
    ordered_events,
    outcome_flag_columns,
    outcome_flags,
)
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


SESSION_COLUMNS: tuple[str, ...] = (
    "session_id", "event_type", "event_timestamp", "account_id", "user_id", "device_id", "device_type",
    "country", "content_id", "is_live", "position_seconds", "player_state", "error_fatal", "error_code",
)
"""The envelope columns a session's state is built from."""

ENVELOPE_OUTPUT: tuple[str, ...] = (
    "event_id", "schema_version", "event_type", "event_timestamp", "account_id", "user_id", "device_id",
    "device_type", "country", "session_id", "content_id", "is_live", "position_seconds", "watch_seconds",
    "completion_pct", "end_reason",
)
OUTCOME_COLUMNS: tuple[str, ...] = ("started", "start_failure", "exit_before_start", "failed_after_start")
OUTCOME_MS = "outcome_ms"
"""The event time (epoch ms) a session is judged at for QoE: its end (the first ``play_end`` or fatal error), or its
last event for a heartbeat timeout (:func:`warehouse_models.metrics.qoe.outcome_counts` buckets it)."""

OUTPUT_DDL = (
    "event_id STRING, schema_version INT, event_type STRING, event_timestamp TIMESTAMP, account_id STRING, "
    "user_id STRING, device_id STRING, device_type STRING, country STRING, session_id STRING, content_id STRING, "
    "is_live BOOLEAN, position_seconds DOUBLE, watch_seconds DOUBLE, completion_pct DOUBLE, end_reason STRING, "
    "started BOOLEAN, start_failure BOOLEAN, exit_before_start BOOLEAN, failed_after_start BOOLEAN, outcome_ms BIGINT"
)
"""The transform's rows: the view_end envelope columns, then the outcome flags and their time for QoE."""


# --- the event id -------------------------------------------------------------------------------------------------


def view_end_id(session_id: str) -> str:
    """The deterministic event id of a session's view_end (within the envelope's id length)."""
    candidate = f"ve-{session_id}"
    if len(candidate) <= MAX_ID_LENGTH:
        return candidate
    return "ve-" + hashlib.sha256(session_id.encode()).hexdigest()[: MAX_ID_LENGTH - 3]


# --- per-session state -----------------------------------------------------------------------------------------


@dataclass
class SessionTracker:
    """What the speed layer keeps about one open session: the reference form of the rule, in Python (the batch
    transform runs it; the streaming query keeps the same fields in the JVM, ``speed_layer/jvm``)."""

    session_id: str
    account_id: str | None = None
    user_id: str | None = None
    device_id: str | None = None
    device_type: str | None = None
    country: str | None = None
    content_id: str | None = None
    is_live: bool | None = None
    duration_seconds: float | None = None
    last_ms: int | None = None
    position_seconds: float | None = None
    position_ms: int | None = None
    playing_heartbeats: int = 0
    requested: bool = False
    first_frame_ms: int | None = None
    fatal_ms: int | None = None
    fatal_code: str | None = None
    play_end_ms: int | None = None

    _IDENTITY = ("account_id", "user_id", "device_id", "device_type", "country", "content_id", "is_live",
                 "duration_seconds")

    @property
    def explicit_end_ms(self) -> int | None:
        """Event time of the first ``play_end`` or fatal error, if any."""
        ends = [ms for ms in (self.play_end_ms, self.fatal_ms) if ms is not None]
        return min(ends) if ends else None

    def observe(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Fold events (dicts with ``ms``, as :func:`ordered_events` gives them) into the state."""
        for event in events:
            ms = int(event["ms"])
            for name in self._IDENTITY:
                if getattr(self, name) is None and event.get(name) is not None:
                    setattr(self, name, event[name])
            self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)
            position = event.get("position_seconds")
            # Newest by event time; on equal times the later event in the stream wins (as in the ground truth).
            if position is not None and (self.position_ms is None or ms >= self.position_ms):
                self.position_seconds, self.position_ms = float(position), ms
            kind = event.get("event_type")
            if kind == EventType.HEARTBEAT and event.get("player_state") == "playing":
                self.playing_heartbeats += 1
            elif kind == EventType.PLAY_REQUEST:
                self.requested = True
            elif kind == EventType.FIRST_FRAME:
                self.first_frame_ms = ms if self.first_frame_ms is None else min(self.first_frame_ms, ms)
            elif kind == EventType.PLAY_END:
                self.play_end_ms = ms if self.play_end_ms is None else min(self.play_end_ms, ms)
            elif kind == EventType.ERROR and event.get("error_fatal") and (self.fatal_ms is None or ms < self.fatal_ms):
                self.fatal_ms, self.fatal_code = ms, event.get("error_code")

    def flags(self) -> dict[str, bool]:
        return outcome_flags(requested=self.requested, first_frame_ms=self.first_frame_ms, fatal_ms=self.fatal_ms,
                             fatal_code=self.fatal_code, play_end_ms=self.play_end_ms)

    def completion_pct(self) -> float | None:
        """Last position over the title's duration in percent; None when live or the duration is unknown."""
        if self.is_live or not self.duration_seconds or self.position_seconds is None:
            return None
        return round(min(100.0, max(0.0, self.position_seconds / self.duration_seconds * 100.0)), 3)

    def view_end(self, end_reason: str) -> dict[str, Any]:
        """The view_end row (envelope columns and outcome flags) for this session."""
        assert self.last_ms is not None, "a tracked session has seen an event"
        return {
            "event_id": view_end_id(self.session_id),
            "schema_version": SCHEMA_VERSION,
            "event_type": EventType.VIEW_END.value,
            "event_timestamp": pd.Timestamp(self.last_ms, unit="ms", tz="UTC"),
            "account_id": self.account_id,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "device_type": self.device_type,
            "country": self.country,
            "session_id": self.session_id,
            "content_id": self.content_id,
            "is_live": self.is_live,
            "position_seconds": self.position_seconds,
            "watch_seconds": float(HEARTBEAT_INTERVAL_SECONDS * self.playing_heartbeats),
            "completion_pct": self.completion_pct(),
            "end_reason": end_reason,
            **self.flags(),
            OUTCOME_MS: self.explicit_end_ms if self.explicit_end_ms is not None else self.last_ms,
        }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = [*ENVELOPE_OUTPUT, *OUTCOME_COLUMNS, OUTCOME_MS]
    return pd.DataFrame(rows, columns=columns)


def session_view_ends(session_id: str, events: pd.DataFrame, *, watermark_ms: int, timeout_ms: int) -> pd.DataFrame:
    """The view_end of one session given all its events at once (0 or 1 row): the batch form of the query.

    Args:
        session_id: the session.
        events: its events (the :data:`SESSION_COLUMNS`, optionally ``duration_seconds``), in any order.
        watermark_ms: the event-time watermark the data has reached; a session without an explicit end
            ends by timeout when its last event plus ``timeout_ms`` is before it, and is still open otherwise.
        timeout_ms: the heartbeat timeout.
    """
    tracker = SessionTracker(session_id)
    tracker.observe(ordered_events([events]))
    if tracker.last_ms is None:
        return _frame([])
    if tracker.explicit_end_ms is not None:
        return _frame([tracker.view_end("explicit_end")])
    if tracker.last_ms + timeout_ms < watermark_ms:
        return _frame([tracker.view_end("heartbeat_timeout")])
    return _frame([])


def _batch_step(frame: pd.DataFrame, *, timeout_ms: int) -> pd.DataFrame:
    if frame.empty:
        return _frame([])
    watermark_ms = int(frame["_watermark_ms"].iloc[0])
    session_id = str(frame["session_id"].iloc[0])
    return session_view_ends(session_id, frame.drop(columns=["_watermark_ms"]), watermark_ms=watermark_ms,
                             timeout_ms=timeout_ms)


# --- the transform -------------------------------------------------------------------------------------------


JVM_INPUT: tuple[tuple[str, str], ...] = (
    ("session_id", "string"), ("event_type", "string"), ("event_ms", "bigint"), ("account_id", "string"),
    ("user_id", "string"), ("device_id", "string"), ("device_type", "string"), ("country", "string"),
    ("content_id", "string"), ("is_live", "boolean"), ("position_seconds", "double"), ("player_state", "string"),
    ("error_fatal", "boolean"), ("error_code", "string"), ("duration_seconds", "double"),
)
"""The columns ``reelytics.speed.ViewEnd`` reads (its ``INPUT_DDL``), in its order."""


def jvm_view_end_rows(rows: DataFrame, *, timeout_ms: int) -> DataFrame:
    """A streaming frame of session events (:data:`SESSION_COLUMNS` and ``duration_seconds``, with an event-time
    watermark) -> view_end rows (:data:`OUTPUT_DDL`), the session state kept by ``reelytics.speed.ViewEnd``
    (``speed_layer/jvm``): the rule of :class:`SessionTracker`, with no Python per session or per event."""
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import functions as F

    spark = rows.sparkSession
    inputs = rows.select(*(F.unix_millis("event_timestamp").alias(name) if name == "event_ms"
                           else F.col(name).cast(kind) for name, kind in JVM_INPUT), "event_timestamp")
    processor = spark._jvm.reelytics.speed.ViewEnd  # type: ignore[union-attr]
    if not callable(getattr(processor, "rows", None)):
        raise ServiceError("the view_end query needs Reelytics' Spark classes (reelytics.speed.ViewEnd), and this "
                           "Spark session did not load them: run `bash infra/install.sh` (it compiles them with "
                           "javac), or `python -m infra.jvm`, then restart the speed layer")
    facts = SparkFrame(processor.rows(inputs._jdf, timeout_ms), spark)
    return view_end_columns(facts)


def view_end_columns(facts: DataFrame) -> DataFrame:
    """``ViewEnd``'s rows (a session's facts and its end reason) -> :data:`OUTPUT_DDL` columns, as
    :meth:`SessionTracker.view_end` makes them."""
    from pyspark.sql import functions as F

    session = F.col("session_id")
    plain_id = F.concat(F.lit("ve-"), session)
    event_id = F.when(F.length(plain_id) <= MAX_ID_LENGTH, plain_id).otherwise(
        F.concat(F.lit("ve-"), F.substring(F.sha2(session, 256), 1, MAX_ID_LENGTH - 3)))
    position, duration = F.col("position_seconds"), F.col("duration_seconds")
    # As SessionTracker.completion_pct: no value when live, without a (non-zero, non-NaN) duration or a position.
    # Spark rounds the decimal text half up where Python rounds the binary value: ties may differ in the third
    # decimal (the stream passes no durations, so it never computes one).
    known = duration.isNotNull() & (duration != 0) & ~F.isnan(duration) & position.isNotNull()
    completion = F.when(~F.coalesce(F.col("is_live"), F.lit(False)) & known,
                        F.round(F.least(F.lit(100.0), F.greatest(F.lit(0.0), position / duration * 100.0)), 3))
    flags = outcome_flag_columns(requested=F.col("requested"), first_frame_ms=F.col("first_frame_ms"),
                                 fatal_ms=F.col("fatal_ms"), fatal_code=F.col("fatal_code"),
                                 play_end_ms=F.col("play_end_ms"))
    return facts.select(
        event_id.alias("event_id"),
        F.lit(SCHEMA_VERSION).cast("int").alias("schema_version"),
        F.lit(EventType.VIEW_END.value).alias("event_type"),
        F.timestamp_millis("event_ms").alias("event_timestamp"),
        "account_id", "user_id", "device_id", "device_type", "country", "session_id", "content_id", "is_live",
        "position_seconds",
        (F.col("playing_heartbeats") * F.lit(float(HEARTBEAT_INTERVAL_SECONDS))).alias("watch_seconds"),
        completion.alias("completion_pct"),
        "end_reason",
        *(flags[name].alias(name) for name in OUTCOME_COLUMNS),
        # least() skips nulls: the explicit end, else (a timeout) the last event.
        F.coalesce(F.least("play_end_ms", "fatal_ms"), F.col("event_ms")).alias(OUTCOME_MS),
    )


def view_end_rows(events: DataFrame, settings: Settings, *, durations: DataFrame | None = None) -> DataFrame:
    """Valid events -> one view_end row per ended session (columns of :data:`OUTPUT_DDL`).

    On a streaming frame: :func:`jvm_view_end_rows`, Spark's ``transformWithState`` keyed by session in the JVM
    (one state value and one event-time timer per open session, RocksDB state store). On a batch frame: the
    rule of :class:`SessionTracker` per session through ``applyInPandas``, with the watermark the stream would
    have after reading the frame (its newest event time minus the allowed lateness), so both give the same rows
    (``tests/spark/test_speed_view_end.py`` holds them to each other).

    Args:
        events: valid envelope events (:func:`speed_layer.source.valid_events` or :func:`events_frame`).
        settings: heartbeat timeout and allowed lateness.
        durations: optional ``content_id, duration_seconds`` (e.g. from the catalog) for ``completion_pct``.
    """
    from pyspark.sql import functions as F

    lateness = settings.speed_allowed_lateness_seconds
    timeout_ms = settings.speed_heartbeat_timeout_seconds * 1000
    playback = sorted(t.value for t in PLAYBACK_TYPES)
    rows = (drop_resent(events.withWatermark("event_timestamp", f"{lateness} seconds"))
            .where(F.col("event_type").isin(playback) & F.col("session_id").isNotNull())
            .select(*SESSION_COLUMNS))
    if durations is not None:
        rows = rows.join(F.broadcast(durations.select("content_id", F.col("duration_seconds").cast("double"))),
                         "content_id", "left")
    else:
        rows = rows.withColumn("duration_seconds", F.lit(None).cast("double"))
    rows = rows.select(*SESSION_COLUMNS, "duration_seconds")
    if rows.isStreaming:
        return jvm_view_end_rows(rows, timeout_ms=timeout_ms)

    def batch_step(frame: pd.DataFrame) -> pd.DataFrame:
        return _batch_step(frame, timeout_ms=timeout_ms)

    front = rows.agg((F.unix_millis(F.max("event_timestamp")) - F.lit(lateness * 1000)).alias("_watermark_ms"))
    return rows.crossJoin(front).groupBy("session_id").applyInPandas(batch_step, OUTPUT_DDL)


# --- the sink -------------------------------------------------------------------------------------------------


def view_end_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """A transform row (with ``event_ms``, the event time in epoch ms) as an envelope event (no nulls)."""
    event = {name: row.get(name) for name in ENVELOPE_OUTPUT if name != "event_timestamp"}
    event["event_timestamp"] = datetime.fromtimestamp(0, tz=timezone.utc) + timedelta(milliseconds=int(row["event_ms"]))
    return {name: value for name, value in event.items() if value is not None}


def write_view_end(batch: DataFrame, ctx: SinkContext) -> None:
    """Add a micro-batch's judged sessions to the QoE buckets (:func:`speed_layer.qoe.write_outcomes`, fenced by
    batch id), then send its view ends to the derived topic as wire-form JSON, keyed by account."""
    from pyspark.sql import functions as F

    columns = [c for c in ENVELOPE_OUTPUT if c != "event_timestamp"]
    rows = collect_rows(batch.select(*columns, F.unix_millis("event_timestamp").alias("event_ms"),
                                     *OUTCOME_COLUMNS, OUTCOME_MS))
    write_outcomes(rows, ctx)
    records: list[tuple[bytes, bytes]] = []
    refused = 0
    for row in rows:
        event = view_end_event(row)
        # The envelope is checked here so a bug shows up as a logged reason, not as a dead letter downstream;
        # age is not judged (a replayed topic may be old).
        check = validate_event(to_wire(event), now=event["event_timestamp"])
        if not check.ok:
            refused += 1
            logger.error("view_end %s not sent: %s", event.get("event_id"), check.reason)
            continue
        records.append((kafka_key(event), encode(event)))
    ctx.stats["view_ends"] = len(records)
    if refused:
        ctx.stats["view_ends_refused"] = refused
    if not records:
        return
    # From the driver: a handful of records per micro-batch, not worth a Spark job of their own.
    produce_all(ctx.settings, ctx.settings.topics.derived.name, records)


def read_view_end(settings: Settings, *, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The view_end events on the derived topic (decoded JSON, in topic order per partition)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topics.derived.name,
                             **settings.kafka_consumer_config(consumer_timeout_ms=int(timeout_s * 1000)))
    try:
        events = [json.loads(message.value) for message in consumer]
    finally:
        consumer.close()
    return [event for event in events if event.get("event_type") == EventType.VIEW_END.value]


QUERY = ViewQuery(
    name="view_end",
    description="One view_end per session (explicit end or heartbeat timeout) to the derived topic; its QoE "
                "outcome (start failure, exit before start, failure after start) added to the QoE buckets.",
    topics=(TopicKind.PLAYBACK,),
    transform=view_end_rows,
    write=write_view_end,
    output_mode="append",
    stateful=True,
)

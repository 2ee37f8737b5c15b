"""View ends from hand-made sessions: the per-session function, the JVM stream and the batch transform.

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_view_end.py``.
"""

from __future__ import annotations

from speed_layer.source import events_frame
from speed_layer.view_end import (
    view_end_rows,
)
from tests.unit.test_speed_view_end import (
    EXPLICIT,
    START_FAILURE,
    T0,
    TIMED_OUT,
    _event,
    _heartbeat,
    _session_explicit,
    _session_start_failure,
    _session_timeout,
)
from warehouse_models.settings import Settings

SETTINGS = Settings(speed_allowed_lateness_seconds=10, speed_heartbeat_timeout_seconds=30)


def test_batch_transform_gives_one_row_per_ended_session(spark):
    from pyspark.sql import functions as F

    clock = [_heartbeat("s-open", 70, 5.0)]  # pushes the batch watermark to 60 s: s-gone (22 + 30) is over
    events = _session_explicit() + _session_timeout() + _session_start_failure() + clock
    frame = view_end_rows(events_frame(spark, events), SETTINGS)
    rows = frame.withColumn("event_timestamp", F.date_format("event_timestamp", "yyyy-MM-dd'T'HH:mm:ss.SSS")).collect()
    got = sorted((r.asDict() for r in rows), key=lambda r: r["session_id"])
    expected = sorted([EXPLICIT, TIMED_OUT, START_FAILURE], key=lambda r: r["session_id"])
    assert got == [{**e, "event_timestamp": e["event_timestamp"].strftime("%Y-%m-%dT%H:%M:%S.000")} for e in expected]


class _Stream:
    """The view_end transform on a stream of parquet files, one file per micro-batch, run step by step with one
    checkpoint (state and watermark carry over), collecting what each step emits."""

    def __init__(self, spark, root, settings: Settings) -> None:
        self.spark, self.root, self.settings = spark, root, settings
        self.schema = events_frame(spark, [_heartbeat("schema", 0, 0.0)]).schema
        self.steps = 0

    def step(self, events) -> list[dict]:
        from pyspark.sql import functions as F

        if events:
            events_frame(self.spark, events).coalesce(1).write.parquet(str(self.root / "in" / f"{self.steps:03d}"))
        self.steps += 1
        got: list[dict] = []
        stream = self.spark.readStream.schema(self.schema).option("recursiveFileLookup", "true").parquet(
            str(self.root / "in"))
        rows = view_end_rows(stream, self.settings).withColumn(
            "event_timestamp", F.date_format("event_timestamp", "yyyy-MM-dd'T'HH:mm:ss.SSS"))
        query = (rows.writeStream.foreachBatch(lambda batch, _: got.extend(r.asDict() for r in batch.collect()))
                 .option("checkpointLocation", str(self.root / "checkpoint")).outputMode("append")
                 .trigger(availableNow=True).start())
        query.awaitTermination()
        return sorted(got, key=lambda r: r["session_id"])


def _wire(expected: dict) -> dict:
    return {**expected, "event_timestamp": expected["event_timestamp"].strftime("%Y-%m-%dT%H:%M:%S.000")}


def test_the_stream_keeps_sessions_in_the_jvm_and_ends_each_once(spark, tmp_path):
    """Across micro-batches: an explicit end at once, its stragglers swallowed; a silent session ended once the
    watermark (newest event time minus the lateness) passes its last event plus the timeout, not before."""
    stream = _Stream(spark, tmp_path, SETTINGS)
    explicit, gone = _session_explicit(), _session_timeout()
    assert stream.step(explicit[:3] + gone) == []
    assert stream.step(explicit[3:5]) == [_wire({**EXPLICIT, "watch_seconds": 10.0})]
    # s-gone's last event is at 22 s: the watermark must pass 52 s. A clock event at 62 s puts it at 52: not yet.
    assert stream.step(explicit[5:] + [_heartbeat("s-clock", 62, 1.0)]) == []
    assert stream.step([_heartbeat("s-clock", 63, 2.0)]) == [_wire(TIMED_OUT)]
    # Nothing more: the explicit end's straggler did not end it twice, and s-gone's state is gone.
    assert stream.step([_heartbeat("s-clock", 200, 3.0)]) == []


def test_the_stream_and_the_batch_transform_agree_on_every_session(spark, tmp_path):
    """The JVM processor and the Python reference rule give the same rows for the same events."""
    # s-after heartbeats once more after its play_end: its view_end carries its last event's time, and QoE judges
    # it at its end.
    after = [_event("play_request", "s-after", 0, position_seconds=0.0), _event("first_frame", "s-after", 1),
             _heartbeat("s-after", 11, 10.0), _event("play_end", "s-after", 20, position_seconds=19.0),
             _heartbeat("s-after", 25, 19.0)]
    events = (_session_explicit() + _session_timeout() + _session_start_failure() + after
              + [_heartbeat("s-open", 70, 5.0)])
    batch = view_end_rows(events_frame(spark, events), SETTINGS).collect()
    stream = _Stream(spark, tmp_path, SETTINGS)
    got = stream.step(events) + stream.step([_heartbeat("s-open", 71, 6.0)])
    expected = sorted((r.asDict() for r in batch), key=lambda r: r["session_id"])
    assert {r["session_id"] for r in expected} == {"s-after", "s-end", "s-gone", "s-fail"}
    (ended_after,) = [r for r in expected if r["session_id"] == "s-after"]
    assert ended_after["outcome_ms"] == int(T0.timestamp() * 1000) + 20_000
    assert ended_after["event_timestamp"].replace(tzinfo=T0.tzinfo) == T0.replace(second=25)
    assert got == [{**r, "event_timestamp": r["event_timestamp"].strftime("%Y-%m-%dT%H:%M:%S.000")} for r in expected]


def test_a_session_that_outlives_its_first_timer_ends_at_its_last_event_plus_the_timeout(spark, tmp_path):
    """A session keeps one timer, set at its first deadline, rather than moving it on every event: when it fires
    while the session still heartbeats, nothing is emitted and the timer is set at the session's deadline now, so
    the session ends at the same step as the rule says (its last event + the timeout, passed by the watermark)."""
    stream = _Stream(spark, tmp_path, SETTINGS)
    assert stream.step([_heartbeat("s-long", 0, 0.0)]) == []  # a timer at 30 s
    assert stream.step([_heartbeat("s-long", s, float(s)) for s in (10, 20, 30, 40)]) == []  # watermark 30 s
    # The watermark moves to 40 s, past the first timer: s-long's last event (50 s) is 10 s old, so no end yet.
    assert stream.step([_heartbeat("s-long", 50, 50.0)]) == []
    assert stream.step([_heartbeat("s-clock", 90, 1.0)]) == []  # watermark 80 s: 50 + 30 is not passed
    # Watermark 81 s: ended, once, with all six heartbeats, as the batch transform ends it.
    events = [_heartbeat("s-long", s, float(s)) for s in (0, 10, 20, 30, 40, 50)] + [_heartbeat("s-clock", 91, 2.0)]
    expected = [_wire(r.asDict()) for r in view_end_rows(events_frame(spark, events), SETTINGS).collect()]
    got = stream.step([_heartbeat("s-clock", 91, 2.0)])
    assert [r["session_id"] for r in got] == ["s-long"] and got == expected
    assert (got[0]["end_reason"], got[0]["watch_seconds"]) == ("heartbeat_timeout", 60.0)
    assert stream.step([_heartbeat("s-clock", 200, 3.0)]) == []

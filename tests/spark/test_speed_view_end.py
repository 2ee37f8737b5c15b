"""View ends from hand-made sessions: the per-session function, the stateful step and the batch transform.

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
    TIMED_OUT,
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

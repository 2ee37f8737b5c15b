"""Silver transformations on small hand-made bronze frames (local Spark, no Kafka, no Delta).

Contract: only validated viewer events are kept, one per ``event_id`` (the copy Kafka got first); every event
of a session carries the session's account, user, title and device; an event lands in the hour of its event
time and is late when it reached Kafka after that hour closed plus the grace period; the hours that new bronze
rows touch are their own hours and those of the other events of their sessions; output has silver's columns.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from batch_layer.silver.job import hours_between, partition_predicate

H20 = datetime(2026, 1, 5, 20, 0, tzinfo=timezone.utc)
H21 = H20 + timedelta(hours=1)


def test_partition_predicate_and_hours_between_name_utc_partitions():
    cest = timezone(timedelta(hours=2))
    assert hours_between(H20 + timedelta(minutes=30), H21 + timedelta(minutes=1)) == [H20, H21]
    assert hours_between(H20, H20) == []
    assert partition_predicate("event_hour", [H21, H20.astimezone(cest) + timedelta(minutes=5), H20]) == (
        "event_hour IN (TIMESTAMP '2026-01-05 20:00:00+00:00', TIMESTAMP '2026-01-05 21:00:00+00:00')"
    )
    assert partition_predicate("event_date", [H20.date()]) == "event_date IN (DATE '2026-01-05')"

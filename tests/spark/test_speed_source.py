"""The speed layer's envelope checks: every valid simulator event passes, each malformed one names its field.

The checks are one Spark expression generated from the envelope's field specs; the validator the collector
runs is the reference, so every event here is judged by both and the verdicts must agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from simulator import SimulationConfig, simulate
from speed_layer.source import envelope_violation, events_frame
from warehouse_models.events import format_timestamp, validate_event

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _heartbeat(**changes):
    event = {
        "event_id": "e-1", "schema_version": 1, "event_type": "heartbeat",
        "event_timestamp": format_timestamp(START + timedelta(seconds=5)), "account_id": "acc-1", "user_id": "usr-1",
        "device_type": "tv", "session_id": "ses-1", "content_id": "vod-1", "position_seconds": 12.5,
        "player_state": "playing",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


BAD = [
    (_heartbeat(event_type="teleport"), "event_type"),
    (_heartbeat(schema_version=7), "schema_version"),
    (_heartbeat(position_seconds=-3.0), "position_seconds"),
    (_heartbeat(player_state="dancing"), "player_state"),
    (_heartbeat(session_id=None), "session_id"),
    (_heartbeat(device_type="toaster"), "device_type"),
    (_heartbeat(country="germany"), "country"),
    (_heartbeat(rail_id="r-1"), "rail_id"),
    (_heartbeat(account_id="x" * 80), "account_id"),
    (_heartbeat(event_timestamp=format_timestamp(START + timedelta(days=3))), "event_timestamp"),
]


def _verdicts(spark, events, received):
    from pyspark.sql import functions as F

    frame = events_frame(spark, events).withColumn("kafka_timestamp", F.lit(received))
    return [row["violation"] for row in frame.select(envelope_violation(received=F.col("kafka_timestamp"))
                                                      .alias("violation")).collect()]


def test_every_simulated_event_passes(spark):
    config = SimulationConfig(start=START, duration=timedelta(minutes=3), users=60, titles=30, channels=3)
    events = list(simulate(config))
    assert all(validate_event(e, now=START + timedelta(minutes=3)).ok for e in events)
    verdicts = _verdicts(spark, events, START + timedelta(minutes=3))
    assert len(verdicts) == len(events) and set(verdicts) == {None}


def test_each_malformed_event_names_its_field(spark):
    received = START + timedelta(minutes=1)
    verdicts = _verdicts(spark, [event for event, _ in BAD], received)
    assert len(verdicts) == len(BAD)
    for (event, field), verdict in zip(BAD, verdicts, strict=True):
        reference = validate_event(event, now=received)
        assert reference.field == field, reference.reason
        assert verdict is not None and verdict.startswith(f"{field}:"), (field, verdict)

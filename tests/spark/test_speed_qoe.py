"""QoE sums from hand-made playback events: the batch transform, the rule in Python, and the view_end outcomes.

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_speed_qoe.py``.
"""

from __future__ import annotations

from speed_layer.source import events_frame
from tests.unit.test_speed_qoe import S1, S1_LATE, T0_S, VOD_1200, VOD_1201, _event, _hb, _sums
from warehouse_models.metrics.qoe import QOE_FIELDS, qoe_rows
from warehouse_models.settings import Settings

SETTINGS = Settings(speed_allowed_lateness_seconds=10, speed_heartbeat_timeout_seconds=30)


LIVE = {"content": "live-1", "device": "mobile", "country": None}
OTHERS = [
    # s2: fatal error before the first frame -> start failure at 12:00
    _event("play_request", "s2", 30),
    _event("error", "s2", 33, error_code="MANIFEST_LOAD_FAILED", error_fatal=True),
    # s3: gives up before the first frame -> exit before start at 12:01
    _event("play_request", "s3", 70),
    _event("play_end", "s3", 80, position_seconds=0.0),
    # s4: plays, shifts down, fails at 12:01:30 -> failure after start at 12:01
    _event("play_request", "s4", 5),
    _event("first_frame", "s4", 6, startup_ms=500),
    _hb("s4", 16, 1400),
    _event("quality_change", "s4", 20, bitrate_kbps=800, previous_bitrate_kbps=1400),
    _event("error", "s4", 90, error_code="DECODER_CRASH", error_fatal=True),
    # s5: refused by the plan limit -> a play, no outcome
    _event("play_request", "s5", 100),
    _event("error", "s5", 101, error_code="STREAM_LIMIT_REACHED", error_fatal=True),
    # s6 (live, no country): plays two heartbeats then goes silent -> judged by timeout, started: no outcome
    _event("play_request", "s6", 0, **LIVE),
    _event("first_frame", "s6", 2, startup_ms=2000, **LIVE),
    _hb("s6", 12, 800, **LIVE),
    _hb("s6", 22, 800, **LIVE),
    # s7 (live): a play request and nothing else -> exit before start at 12:00 once silent past the timeout
    _event("play_request", "s7", 40, **LIVE),
]
LIVE_1200 = _sums(plays=2, startups=1, startup_ms_sum=2000, playing_seconds=20, bitrate_seconds_kbps=16000,
                  bitrate_seconds=20, exits_before_start=1)


def test_batch_transform_gives_whole_sums_per_slice_and_minute(spark):
    from pyspark.sql import functions as F

    # Batch watermark: newest event (12:01:41) minus 10 s lateness = 12:01:31, past s6 (22 s + 30) and s7 (40 + 30).
    frame = qoe_rows(events_frame(spark, S1 + OTHERS + [S1_LATE]), SETTINGS)
    got = sorted(
        (r["content_id"], r["device_type"], r["country"], r["bucket"], {f: r[f] for f in QOE_FIELDS})
        for r in frame.select("*", F.unix_seconds("window_start").alias("bucket")).collect()
    )
    assert got == [
        ("live-1", "mobile", "unknown", T0_S, LIVE_1200),
        ("vod-1", "tv", "DE", T0_S, VOD_1200),
        ("vod-1", "tv", "DE", T0_S + 60, VOD_1201),
    ]


def test_batch_transform_leaves_sessions_open_at_the_watermark_unjudged(spark):
    from pyspark.sql import functions as F

    events = [_event("play_request", "s7", 40, **LIVE), _hb("s6", 75, 800, **LIVE)]  # watermark 65 s < 40 + 30
    rows = qoe_rows(events_frame(spark, events), SETTINGS).select(
        F.unix_seconds("window_start").alias("bucket"), "plays", "exits_before_start").collect()
    assert sorted(tuple(r) for r in rows) == [(T0_S, 1, 0), (T0_S + 60, 0, 0)]


def _world_events() -> list[dict]:
    from datetime import datetime, timedelta, timezone

    from simulator import SimulationConfig, simulate

    config = SimulationConfig(start=datetime(2026, 2, 3, 20, tzinfo=timezone.utc), duration=timedelta(minutes=40),
                              users=40)
    # The simulated world, and the hand-made sessions above (every outcome, a refusal, a live slice, no country).
    return [*simulate(config), *S1, *OTHERS, S1_LATE]


def test_batch_transform_equals_the_rule_in_python_on_a_simulated_world(spark):
    """The Spark batch transform and the Python rule (slice by slice) give the same buckets."""
    from datetime import timezone

    from warehouse_models.events import PLAYBACK_TYPES, parse_timestamp
    from warehouse_models.metrics.qoe import UNKNOWN_COUNTRY, batch_buckets

    events = _world_events()
    settings = Settings(speed_allowed_lateness_seconds=120, speed_heartbeat_timeout_seconds=30)
    playback = {t.value for t in PLAYBACK_TYPES}
    wire = [{**e, "ms": int(parse_timestamp(e["event_timestamp"]).timestamp() * 1000),
             "country": e.get("country") or UNKNOWN_COUNTRY} for e in events
            if e["event_type"] in playback and e.get("session_id") and e.get("content_id") and e.get("device_type")]
    watermark_ms = max(e["ms"] for e in wire) - settings.speed_allowed_lateness_seconds * 1000
    timeout_ms = settings.speed_heartbeat_timeout_seconds * 1000
    expected = batch_buckets(wire, watermark_ms=watermark_ms, timeout_ms=timeout_ms)

    rows = qoe_rows(events_frame(spark, events), settings).collect()
    got: dict[tuple[str, str, str], dict[int, dict[str, int]]] = {}
    for row in rows:
        key = (row["content_id"], row["device_type"], row["country"])
        got.setdefault(key, {})[int(row["window_start"].replace(tzinfo=timezone.utc).timestamp())] = {
            name: row[name] for name in QOE_FIELDS}

    assert got == expected
    outcomes = ("start_failures", "exits_before_start", "failures_after_start")
    assert all(sum(s[f] for b in got.values() for s in b.values()) > 0 for f in outcomes)


def test_view_end_judges_the_outcomes_the_batch_transform_counts(spark):
    """The speed layer takes the session outcomes from view_end's rows (:func:`outcome_counts`): on the simulated
    world with every outcome, they are the batch transform's outcome sums, bucket by bucket."""
    from speed_layer.view_end import OUTCOME_COLUMNS, OUTCOME_MS, view_end_rows
    from warehouse_models.metrics.qoe import OUTCOME_FIELDS, outcome_counts

    settings = Settings(speed_allowed_lateness_seconds=120, speed_heartbeat_timeout_seconds=30)
    frame = events_frame(spark, _world_events())
    ended = view_end_rows(frame, settings).select("content_id", "device_type", "country", *OUTCOME_COLUMNS, OUTCOME_MS)
    got = outcome_counts(row.asDict() for row in ended.collect())

    expected = {}
    for row in qoe_rows(frame, settings).collect():
        counts = {name: row[name] for name in OUTCOME_FIELDS}
        if any(counts.values()):
            bucket = int(row["window_start"].timestamp())
            expected[(row["content_id"], row["device_type"], row["country"], bucket)] = counts
    assert got == expected
    assert all(sum(c[f] for c in got.values()) > 0 for f in OUTCOME_FIELDS)

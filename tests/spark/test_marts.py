"""Every mart on small hand-made fact frames (exactly the fact table's columns) with whole expected outputs.

Contract: watch seconds are the heartbeats' ``watch_seconds`` in the date of the heartbeat (``view_end`` rows not
added); a session counts on the date of its first event, a view on the date of its first frame, with the
positions of the whole session (also after midnight); the drop-off curve is the share of views whose furthest
position reached each 5 % of the duration (exact at the boundary); QoE per hour is the speed layer's minute
sums added with its own ratios; concurrency uses the speed layer's rule with the plan valid at each session's
start (inclusive heartbeat intervals, a plan change during the day, sessions from the day before).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from batch_layer.marts.concurrency_violations import mart_concurrency_violations
from batch_layer.marts.content_performance import mart_content_performance
from batch_layer.marts.ctr_daily import MissingFactColumnsError, mart_ctr_daily
from batch_layer.marts.qoe_hourly import OPTIONAL_FACT_COLUMNS, mart_qoe_hourly
from batch_layer.marts.segments import mart_segments
from batch_layer.marts.session_length import mart_session_length
from batch_layer.marts.user_engagement_daily import mart_user_engagement_daily
from warehouse_models.marts import (
    DROPOFF_POINTS,
    MART_CONCURRENCY_VIOLATIONS,
    MART_CONTENT_PERFORMANCE,
    MART_CTR_DAILY,
    MART_QOE_HOURLY,
    MART_SEGMENTS,
    MART_SESSION_LENGTH,
    MART_USER_ENGAGEMENT_DAILY,
    dropoff_column,
)
from warehouse_models.metrics.qoe import QOE_FIELDS, qoe_metrics, qoe_ratio_columns
from warehouse_models.settings import Settings
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, TableSpec

D = date(2026, 3, 1)
D1 = D + timedelta(days=1)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CREATED = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
SETTINGS = Settings(speed_allowed_lateness_seconds=120, speed_heartbeat_timeout_seconds=30)
WHO = {
    "u1": ("a1", "tv", "DE"), "u2": ("a2", "mobile", "FR"), "u3": ("a3", "web", None), "u4": ("a4", "tv", "DE"),
}


def fact_row(event_type: str, seconds: float, *, user: str = "u1", session: str | None = None,
             content: str | None = "vod-1", position: float | None = None, state: str | None = None,
             account: str | None = None, bitrate: int | None = None, startup: int | None = None,
             stall: int | None = None, watch: float | None = None, **extra: Any) -> dict[str, Any]:
    """One fact row at ``T0 + seconds``; a heartbeat's watch seconds are 10 when ``state`` is playing."""
    at = T0 + timedelta(seconds=seconds)
    default_account, device, country = WHO.get(user, (f"a-{user}", "tv", "DE"))
    if event_type == "heartbeat" and watch is None:
        watch = 10.0 if state == "playing" else 0.0
    row = {
        "event_id": f"{session or user}-{event_type}-{seconds:g}", "user_id": user, "content_id": content,
        "event_timestamp": at, "event_type": event_type, "position_seconds": position, "quality_level": None,
        "device_type": device, "network_quality": "good", "session_id": session, "created_at": CREATED,
        "account_id": account or default_account, "country": country, "bitrate_kbps": bitrate,
        "stall_ms": stall, "startup_ms": startup, "watch_seconds": watch, "player_state": state,
        "is_live": content is not None and content.startswith("live"), "event_date": at.date(),
    }
    row.update(extra)
    return row


def frame(spark, rows: list[dict[str, Any]], *, extra: tuple[tuple[str, str], ...] = ()):
    """The rows as a frame with exactly the fact table's columns, plus those of ``extra`` it does not declare."""
    declared = FACT_STREAM_EVENTS.column_names
    added = [(name, kind) for name, kind in extra if name not in declared]
    names = declared + [name for name, _ in added]
    ddl = ", ".join([FACT_STREAM_EVENTS.spark_ddl(), *(f"{name} {kind}" for name, kind in added)])
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], ddl)


def collect(df, spec: TableSpec, *keys: str) -> list[dict[str, Any]]:
    """The frame's rows as dicts, sorted by ``keys``, after checking it has the spec's columns in order."""
    assert df.columns == spec.column_names
    return sorted((r.asDict() for r in df.collect()), key=lambda r: tuple((r[k] is None, r[k]) for k in keys))


def _session(session: str, user: str, content: str, events: list[tuple[str, float, dict[str, Any]]]):
    return [fact_row(kind, at, user=user, session=session, content=content, **fields) for kind, at, fields in events]


# Shared scenario: vod-1 runs 10 minutes (600 s), vod-2 20 minutes, live-1 has no duration.
LATE_D = 11 * 3600 + 59 * 60  # seconds from T0 to 23:59:00 on D
SHARED = [
    *_session("s1", "u1", "vod-1", [
        ("play_request", 0, {}), ("first_frame", 1, {"startup": 1000, "bitrate": 3000}),
        ("heartbeat", 10, {"position": 300.0, "state": "playing", "bitrate": 3000}),
        ("heartbeat", 20, {"position": 450.0, "state": "playing", "bitrate": 3000}),
        ("heartbeat", 30, {"position": 600.0, "state": "playing", "bitrate": 3000}),
        ("play_end", 40, {"position": 600.0}),
    ]),
    fact_row("view_end", 40, user="u1", session="s1", watch=30.0, position=600.0),
    *_session("s3", "u1", "vod-2", [("play_request", 200, {}), ("play_end", 205, {"position": 0.0})]),
    fact_row("impression", 300, user="u1", content="vod-3"),
    fact_row("click", 301, user="u1", content="vod-3"),
    *_session("s2", "u2", "vod-1", [
        ("play_request", 100, {}), ("first_frame", 101, {"startup": 2000}),
        ("heartbeat", 110, {"position": 100.0, "state": "playing"}),
        ("heartbeat", 120, {"position": 200.0, "state": "paused"}),
        ("play_end", 130, {"position": 200.0}),
    ]),
    # Starts at 23:59:55 on D and plays on past midnight: a view of D whose last positions come on D+1.
    *_session("s6", "u2", "vod-1", [
        ("play_request", LATE_D + 55, {}), ("first_frame", LATE_D + 56, {"startup": 1000}),
        ("heartbeat", LATE_D + 65, {"position": 590.0, "state": "playing"}),
        ("heartbeat", LATE_D + 75, {"position": 600.0, "state": "playing"}),
    ]),
    *_session("s4", "u3", "live-1", [
        ("play_request", 400, {}), ("first_frame", 401, {"startup": 500}),
        ("heartbeat", 410, {"position": 10.0, "state": "playing"}),
    ]),
    # Furthest position exactly 5 % of 600 s: reaches the 5 % point.
    *_session("s5", "u4", "vod-1", [
        ("play_request", 300, {}), ("first_frame", 301, {"startup": 1000}),
        ("heartbeat", 310, {"position": 30.0, "state": "playing"}),
    ]),
]


def dim_content(spark):
    names = DIM_CONTENT.column_names
    rows = [
        {"content_id": "vod-1", "content_type": "vod", "duration_minutes": 10, "updated_at": T0},
        {"content_id": "vod-2", "content_type": "vod", "duration_minutes": 20, "updated_at": T0},
        {"content_id": "vod-3", "content_type": "vod", "duration_minutes": 90, "updated_at": T0},
        {"content_id": "live-1", "content_type": "live", "duration_minutes": None, "updated_at": T0},
    ]
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], DIM_CONTENT.spark_ddl())


def test_user_engagement_daily(spark):
    out = collect(mart_user_engagement_daily(frame(spark, SHARED)), MART_USER_ENGAGEMENT_DAILY,
                  "user_id", "event_date")
    assert out == [
        {"user_id": "u1", "account_id": "a1", "watch_seconds": 30.0, "sessions": 2, "events": 10, "clicks": 1,
         "distinct_titles": 2, "event_date": D},
        {"user_id": "u2", "account_id": "a2", "watch_seconds": 10.0, "sessions": 2, "events": 7, "clicks": 0,
         "distinct_titles": 1, "event_date": D},
        {"user_id": "u2", "account_id": "a2", "watch_seconds": 20.0, "sessions": 0, "events": 2, "clicks": 0,
         "distinct_titles": 1, "event_date": D1},
        {"user_id": "u3", "account_id": "a3", "watch_seconds": 10.0, "sessions": 1, "events": 3, "clicks": 0,
         "distinct_titles": 1, "event_date": D},
        {"user_id": "u4", "account_id": "a4", "watch_seconds": 10.0, "sessions": 1, "events": 3, "clicks": 0,
         "distinct_titles": 1, "event_date": D},
    ]


def _curve(share_of: dict[int, float] | None) -> dict[str, float | None]:
    return {dropoff_column(p): (None if share_of is None else share_of[p]) for p in DROPOFF_POINTS}


def test_content_performance_with_completion_and_dropoff_curve(spark):
    out = collect(mart_content_performance(frame(spark, SHARED), dim_content(spark)), MART_CONTENT_PERFORMANCE,
                  "content_id", "event_date")
    # vod-1 on D: four views with furthest positions 600 (s1), 200 (s2), 30 (s5) and 600 (s6, after midnight).
    vod1_curve = {p: 1.0 if p <= 5 else 0.75 if p <= 30 else 0.5 for p in DROPOFF_POINTS}
    assert out == [
        {"content_id": "live-1", "duration_minutes": None, "views": 1, "watch_seconds": 10.0,
         "completed_views": None, "completion_rate": None, **_curve(None), "event_date": D},
        {"content_id": "vod-1", "duration_minutes": 10, "views": 4, "watch_seconds": 50.0,
         "completed_views": 2, "completion_rate": 0.5, **_curve(vod1_curve), "event_date": D},
        {"content_id": "vod-1", "duration_minutes": 10, "views": 0, "watch_seconds": 20.0,
         "completed_views": None, "completion_rate": None, **_curve(None), "event_date": D1},
        {"content_id": "vod-2", "duration_minutes": 20, "views": 0, "watch_seconds": 0.0,
         "completed_views": None, "completion_rate": None, **_curve(None), "event_date": D},
    ]


def test_segments(spark):
    out = collect(mart_segments(frame(spark, SHARED)), MART_SEGMENTS, "event_date", "device_type", "country")
    assert out == [
        {"device_type": "mobile", "country": "FR", "users": 1, "sessions": 2, "watch_seconds": 10.0, "event_date": D},
        {"device_type": "tv", "country": "DE", "users": 2, "sessions": 3, "watch_seconds": 40.0, "event_date": D},
        {"device_type": "web", "country": "unknown", "users": 1, "sessions": 1, "watch_seconds": 10.0,
         "event_date": D},
        {"device_type": "mobile", "country": "FR", "users": 1, "sessions": 0, "watch_seconds": 20.0,
         "event_date": D1},
    ]


def test_ctr_daily_by_button_and_rail(spark):
    def interaction(kind: str, at: float, rail: str, button: str) -> dict[str, Any]:
        return fact_row(kind, at, content="vod-3", rail_id=rail, button_id=button)

    rows = [
        *(interaction("impression", i, "r1", "tile") for i in range(3)),
        interaction("click", 5, "r1", "tile"),
        interaction("click", 6, "r1", "play"),
        interaction("impression", 86_400, "r2", "tile"),
        interaction("impression", 86_401, "r2", "tile"),
        fact_row("heartbeat", 7, session="s1", position=1.0, state="playing"),
    ]
    fact = frame(spark, rows, extra=(("rail_id", "string"), ("button_id", "string")))
    out = collect(mart_ctr_daily(fact), MART_CTR_DAILY, "event_date", "rail_id", "button_id")
    assert out == [
        {"button_id": "play", "rail_id": "r1", "impressions": 0, "clicks": 1, "ctr": None, "event_date": D},
        {"button_id": "tile", "rail_id": "r1", "impressions": 3, "clicks": 1, "ctr": 1 / 3, "event_date": D},
        {"button_id": "tile", "rail_id": "r2", "impressions": 2, "clicks": 0, "ctr": 0.0, "event_date": D1},
    ]


def test_ctr_daily_names_the_fact_columns_it_lacks(spark):
    with pytest.raises(MissingFactColumnsError, match=r"\['rail_id', 'button_id'\]"):
        mart_ctr_daily(frame(spark, SHARED).drop("rail_id", "button_id"))


def test_session_length_distribution_with_every_bucket(spark):
    lengths = {"l1": (0, 30), "l2": (100, 60), "l3": (200, 600), "l4": (300, 7200), "l5": (86_400, 1800)}
    rows = [fact_row(kind, start + (length if kind == "heartbeat" else 0), session=sid, position=0.0,
                     state="playing")
            for sid, (start, length) in lengths.items() for kind in ("play_request", "heartbeat")]
    out = collect(mart_session_length(frame(spark, rows)), MART_SESSION_LENGTH, "event_date", "bucket_min_minutes")
    bounds = [("0-1", 0, 1), ("1-5", 1, 5), ("5-15", 5, 15), ("15-30", 15, 30), ("30-60", 30, 60),
              ("60-120", 60, 120), ("120+", 120, None)]
    on_d = [1, 1, 1, 0, 0, 0, 1]
    on_d1 = [0, 0, 0, 0, 1, 0, 0]
    assert out == [
        {"length_bucket": name, "bucket_min_minutes": low, "bucket_max_minutes": high, "sessions": n,
         "share": n / sum(counts), "event_date": day}
        for day, counts in ((D, on_d), (D1, on_d1)) for (name, low, high), n in zip(bounds, counts, strict=True)
    ]


def _qoe_scenario() -> list[dict[str, Any]]:
    return [
        *_session("q1", "u1", "vod-1", [
            ("play_request", 0, {}), ("first_frame", 1, {"startup": 1000, "bitrate": 3000}),
            ("heartbeat", 10, {"position": 9.0, "state": "playing", "bitrate": 3000}),
            ("buffer_end", 15, {"stall": 2000}),
            ("heartbeat", 20, {"position": 17.0, "state": "playing", "bitrate": 3000}),
            ("quality_change", 25, {"bitrate": 4000, "previous_bitrate_kbps": 3000}),
            ("heartbeat", 30, {"position": 18.0, "state": "paused", "bitrate": 4000}),
            ("play_end", 40, {"position": 18.0}),
        ]),
        # Requested at 12:59:50, played and ended after 13:00: plays and startups in 12, playing time in 13.
        *_session("q2", "u1", "vod-1", [
            ("play_request", 3590, {}), ("first_frame", 3592, {"startup": 3000}),
            ("heartbeat", 3605, {"position": 10.0, "state": "playing", "bitrate": 5000}),
            ("play_end", 3610, {"position": 10.0}),
        ]),
        *_session("q3", "u1", "vod-1", [("play_request", 4200, {}), ("play_end", 4205, {"position": 0.0})]),
        # A live session that goes silent before starting: judged an exit before start once the watermark
        # (newest event 13:10:05 minus 120 s) passes its last event plus the 30 s timeout.
        *_session("q4", "u3", "live-1", [
            ("play_request", 1800, {}), ("heartbeat", 1810, {"position": 0.0, "state": "playing"}),
        ]),
    ]


def _qoe(hour: int, content: str, device: str, country: str, sums: dict[str, int],
         ratios: dict[str, float | None]) -> dict[str, Any]:
    names = ("plays", "startups", "startup_ms_sum", "playing_seconds", "stall_ms", "rebuffers",
             "bitrate_seconds_kbps", "bitrate_seconds", "quality_changes", "upshifts", "downshifts",
             "start_failures", "exits_before_start", "failures_after_start")
    at = datetime(2026, 3, 1, hour)
    return {"content_id": content, "device_type": device, "country": country,
            **{n: sums.get(n, 0) for n in names}, **ratios, "event_date": at.date(), "event_hour": at}


def test_qoe_hourly_adds_the_speed_layers_minute_sums_and_uses_its_ratios(spark):
    rows = _qoe_scenario()
    # Without the previous bitrate the quality change counts, but as neither up nor down; without the state a
    # heartbeat plays when it has watch seconds.
    fact = frame(spark, rows).drop(*OPTIONAL_FACT_COLUMNS, "player_state")
    out = collect(mart_qoe_hourly(fact, SETTINGS), MART_QOE_HOURLY, "event_hour", "content_id")
    none_ratios = {"upshift_share": None, "downshift_share": None}
    assert out == [
        _qoe(12, "live-1", "web", "unknown", {"plays": 1, "playing_seconds": 10, "exits_before_start": 1},
             {"video_startup_time_ms": None, "rebuffering_ratio": 0.0, "rebuffers_per_hour": 0.0,
              "average_bitrate_kbps": None, **none_ratios, "video_start_failure_rate": 0.0,
              "exit_before_start_rate": 1.0, "playback_failure_rate": None}),
        _qoe(12, "vod-1", "tv", "DE",
             {"plays": 2, "startups": 2, "startup_ms_sum": 4000, "playing_seconds": 20, "stall_ms": 2000,
              "rebuffers": 1, "bitrate_seconds_kbps": 60_000, "bitrate_seconds": 20, "quality_changes": 1},
             {"video_startup_time_ms": 2000.0, "rebuffering_ratio": 2.0 / 22.0, "rebuffers_per_hour": 180.0,
              "average_bitrate_kbps": 3000.0, "upshift_share": 0.0, "downshift_share": 0.0,
              "video_start_failure_rate": 0.0, "exit_before_start_rate": 0.0, "playback_failure_rate": 0.0}),
        _qoe(13, "vod-1", "tv", "DE",
             {"plays": 1, "playing_seconds": 10, "bitrate_seconds_kbps": 50_000, "bitrate_seconds": 10,
              "exits_before_start": 1},
             {"video_startup_time_ms": None, "rebuffering_ratio": 0.0, "rebuffers_per_hour": 0.0,
              "average_bitrate_kbps": 5000.0, **none_ratios, "video_start_failure_rate": 0.0,
              "exit_before_start_rate": 1.0, "playback_failure_rate": None}),
    ]


def test_qoe_hourly_uses_the_envelope_fields_when_the_fact_frame_has_them(spark):
    rows = _qoe_scenario() + [
        fact_row("error", 4300, session="q5", error_fatal=True, error_code="DECODE"),
    ]
    for row in rows:
        row.setdefault("error_fatal", None)
        row.setdefault("error_code", None)
    fact = frame(spark, rows, extra=(("previous_bitrate_kbps", "int"), ("error_fatal", "boolean"),
                                     ("error_code", "string")))
    out = {(r["event_hour"].hour, r["content_id"]): r for r in mart_qoe_hourly(fact, SETTINGS).collect()}
    assert (out[(12, "vod-1")]["upshifts"], out[(12, "vod-1")]["upshift_share"]) == (1, 1.0)
    assert out[(13, "vod-1")]["start_failures"] == 1


def test_qoe_ratio_columns_give_the_very_doubles_of_qoe_metrics(spark):
    import random

    chooser = random.Random(7)
    rows = [{name: 0 for name in QOE_FIELDS}]  # every denominator zero
    for _ in range(300):
        rows.append({name: chooser.choice([0, 1, chooser.randrange(1, 10**4), chooser.randrange(1, 10**12)])
                     for name in QOE_FIELDS})
    ddl = ", ".join(f"{name} bigint" for name in QOE_FIELDS)
    frame_ = spark.createDataFrame([tuple(r[n] for n in QOE_FIELDS) for r in rows], ddl)
    got = [r.asDict() for r in frame_.select("*", *qoe_ratio_columns()).collect()]
    expected = [{**row, **qoe_metrics(row)} for row in rows]
    assert [{k: g[k] for k in e} for g, e in zip(got, expected, strict=True)] == expected


def _users(spark, versions: list[tuple[str, str, int, datetime, datetime | None]]):
    names = DIM_USERS.column_names
    rows = [{"user_key": f"{user}@{start:%H%M}", "user_id": user, "account_id": account, "max_streams": limit,
             "valid_from": start, "valid_to": end, "is_current": end is None}
            for user, account, limit, start, end in versions]
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], DIM_USERS.spark_ddl())


def test_concurrency_violations_with_the_plan_valid_at_each_session_start(spark):
    day_before = T0 - timedelta(days=1)
    upgrade = T0 + timedelta(hours=1)

    def streams(session: str, user: str, first: float, last: float, account: str) -> list[dict[str, Any]]:
        return [fact_row("heartbeat", at, user=user, session=session, account=account, position=0.0,
                         state="playing") for at in (first, last)]

    rows = [
        # a1: limit 1 until 13:00, then 2 (u1), and u2 on the same account with limit 1.
        *streams("x0", "u1", -12 * 3600 - 300, -12 * 3600 + 300, "a1"),  # 23:55 on D-1 to 00:05 on D
        *streams("x6", "u1", -12 * 3600 + 60, -12 * 3600 + 120, "a1"),   # starts 00:01 while x0 streams: over
        *streams("x1", "u1", 0, 600, "a1"),
        *streams("x2", "u2", 300, 360, "a1"),    # starts while x1 streams: over
        *streams("x3", "u1", 600, 660, "a1"),    # starts at x1's last heartbeat (inclusive): over
        *streams("x4", "u1", 5400, 6000, "a1"),
        *streams("x5", "u1", 5700, 5760, "a1"),  # 13:35, one other streams, the plan allows 2 by then
        # a9: a single stream, within its limit; a3: no plan known, so nobody is over it.
        *streams("y1", "u9", 0, 600, "a9"),
        *streams("z1", "u3", 0, 600, "a3"),
        *streams("z2", "u3", 10, 600, "a3"),
    ]
    users = _users(spark, [
        ("u1", "a1", 1, day_before, upgrade), ("u1", "a1", 2, upgrade, None),
        ("u2", "a1", 1, day_before, None), ("u9", "a9", 1, day_before, None),
    ])
    out = collect(mart_concurrency_violations(frame(spark, rows), users), MART_CONCURRENCY_VIOLATIONS,
                  "account_id", "event_date")
    assert out == [
        {"account_id": "a1", "max_streams": 1, "sessions": 6, "sessions_over_limit": 3, "peak_streams": 2,
         "over_limit_session_ids": ["x2", "x3", "x6"], "event_date": D},
    ]


def test_concurrency_violations_equal_the_shared_rule_on_random_accounts(spark):
    """Random overlapping sessions and plan changes: the mart equals the shared rule applied account by account."""
    import random

    from warehouse_models.metrics.concurrency import over_limit_sessions

    rng = random.Random(11)
    rows, versions, sessions = [], [], []
    for a in range(12):
        account, user = f"acc{a}", f"usr{a}"
        change = T0 + timedelta(minutes=rng.randrange(-600, 600))
        limits = (rng.choice((1, 2, 3)), rng.choice((1, 2, 3, 4)))
        versions += [(user, account, limits[0], T0 - timedelta(days=2), change),
                     (user, account, limits[1], change, None)]
        for n in range(rng.randrange(4, 16)):
            first = rng.randrange(-14 * 3600, 14 * 3600, 30)  # from 22:00 the day before to 02:00 the day after
            last = first + rng.choice((0, 30, 300, 3600, 7200, 14400))
            sid = f"{account}-s{n}"
            rows += [fact_row("heartbeat", at, user=user, session=sid, account=account, position=0.0,
                              state="playing") for at in (first, last)]
            start = T0 + timedelta(seconds=first)
            sessions.append((account, (first, last, sid), limits[0] if start < change else limits[1], start.date()))
    users = _users(spark, versions)

    expected: dict[tuple[str, date], dict[str, Any]] = {}
    for account in sorted({s[0] for s in sessions}):
        mine = sorted((s for s in sessions if s[0] == account), key=lambda s: s[1])
        intervals = [s[1] for s in mine]
        over = {limit: over_limit_sessions(intervals, limit) for limit in {s[2] for s in mine}}
        for i, (_, (first, _, sid), limit, day) in enumerate(mine):
            streaming = sum(1 for _, last, _ in intervals[:i] if last >= first)
            stats = expected.setdefault((account, day), {"sessions": 0, "peak_streams": 0, "over": [], "limit": None})
            stats["sessions"] += 1
            stats["peak_streams"] = max(stats["peak_streams"], streaming + 1)
            if sid in over[limit]:
                stats["limit"] = limit if stats["limit"] is None else stats["limit"]
                stats["over"].append(sid)
    want = sorted(
        ({"account_id": account, "max_streams": s["limit"], "sessions": s["sessions"],
          "sessions_over_limit": len(s["over"]), "peak_streams": s["peak_streams"],
          "over_limit_session_ids": sorted(s["over"]), "event_date": day}
         for (account, day), s in expected.items() if s["over"]),
        key=lambda r: (r["account_id"], r["event_date"]))

    out = collect(mart_concurrency_violations(frame(spark, rows), users), MART_CONCURRENCY_VIOLATIONS,
                  "account_id", "event_date")

    assert len(want) >= 5
    assert out == want

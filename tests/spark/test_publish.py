"""Each batch view's rows on small hand-made fact frames (local Spark, no services).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_publish.py``.
"""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from batch_layer.publish import content_totals, ctr, qoe, trending_baselines, user_totals
from tests.spark.test_marts import SETTINGS, SHARED, T0, dim_content, fact_row, frame
from warehouse_models.marts import DROPOFF_POINTS, dropoff_column

# --- the views' rows on small fact frames (Spark) -------------------------------------------------------------

END = T0 + timedelta(seconds=302)


def test_user_totals_count_like_the_speed_engagement_view(spark):
    rows = user_totals.user_totals(frame(spark, SHARED), SETTINGS, end=END).collect()
    got = {r["user_id"]: (r["watch_seconds"], r["events"], r["clicks"]) for r in rows}
    # u1: s1's six playback events (its view_end is derived, not counted), s3's two, an impression and a click;
    # u3 plays only after END, u4's session starts right before it.
    assert got == {"u1": (30, 10, 1), "u2": (10, 5, 0), "u4": (0, 2, 0)}
    since = user_totals.user_totals(frame(spark, SHARED), SETTINGS, start=T0 + timedelta(seconds=100), end=END)
    assert {r["user_id"]: r["events"] for r in since.collect()} == {"u1": 4, "u2": 5, "u4": 2}


def test_user_totals_per_day_split_at_midnight(spark):
    later = T0 + timedelta(days=2)
    rows = {r["user_id"]: r for r in user_totals.user_totals(frame(spark, SHARED), SETTINGS, end=later,
                                                              daily=True).collect()}
    # u2's events per UTC date, counted from the rows (view_end is derived, not an event of the user's own).
    expected: dict[str, int] = {}
    for row in SHARED:
        if row["user_id"] == "u2" and row["event_type"] != "view_end":
            day = row["event_timestamp"].astimezone(timezone.utc).date().isoformat()
            expected[day] = expected.get(day, 0) + 1
    assert len(expected) == 2  # s6 plays on past midnight
    u2 = rows["u2"]
    assert {day: values["events"] for day, values in u2["days"].items()} == expected
    assert sum(values["watch_seconds"] for values in u2["days"].values()) == u2["watch_seconds"]


def test_content_totals_add_up_the_content_mart_before_w(spark):
    rows = content_totals.content_totals(frame(spark, SHARED), dim_content(spark), end=END).collect()
    got = {r["content_id"]: tuple(r[f] for f in content_totals.FIELDS[:4]) for r in rows}
    # vod-1: s1 (complete: 600 of 600 s), s2 (paused at 200 s) and s5 (started at 301 s, no position yet); vod-2
    # never started.
    assert got == {"vod-1": (3, 40.0, 1, pytest.approx(1 / 3)), "vod-2": (0, 0.0, None, None)}
    curves = {r["content_id"]: [r[f] for f in content_totals.FIELDS[4:]] for r in rows}
    # The views' furthest positions of the 600 s title, each point counted apart from the code.
    furthest = (600.0, 200.0, 0.0)
    assert curves["vod-1"] == [pytest.approx(sum(f >= 6 * p for f in furthest) / 3) for p in DROPOFF_POINTS]
    assert curves["vod-2"] == [None] * 21


def test_the_drop_off_curve_weighs_each_day_by_its_views(spark):
    day = 86_400
    # Day 1: one view that reaches the end. Day 2: three views, none past 50 % of the 600 s title.
    plays = [fact_row("first_frame", 0, session="d1", user="a", position=0.0),
             fact_row("heartbeat", 10, session="d1", user="a", position=600.0)]
    for i in range(3):
        plays += [fact_row("first_frame", day, session=f"d2-{i}", user=f"b{i}", position=0.0),
                  fact_row("heartbeat", day + 10, session=f"d2-{i}", user=f"b{i}", position=200.0)]
    rows = content_totals.content_totals(frame(spark, plays), dim_content(spark),
                                         end=T0 + timedelta(days=1, hours=1))
    (row,) = [r for r in rows.collect() if r["content_id"] == "vod-1"]
    # Pooled over both days: 4 views; 30 % reached by all four, 35 % and on by the first day's one only.
    assert row["views"] == 4 and row[dropoff_column(30)] == 1.0 and row[dropoff_column(35)] == 0.25


def test_ctr_totals_per_rail_button_and_title(spark):
    clicks = [fact_row(kind, at, content=content, rail_id=rail, button_id="tile")
              for kind, at, content, rail in (("impression", 10, "vod-3", "r1"), ("impression", 70, "vod-3", "r1"),
                                              ("click", 71, "vod-3", "r1"), ("click", 75, None, "r1"),
                                              ("impression", 80, "vod-1", "r2"), ("click", 400, "vod-1", "r2"))]
    rows = ctr.ctr_totals(frame(spark, clicks), SETTINGS, end=END).collect()
    got = {(r["rail_id"], r["button_id"], r["content_id"]): (r["impressions"], r["clicks"]) for r in rows}
    assert got == {("r1", "tile", "vod-3"): (2, 1), ("r1", "tile", None): (0, 1), ("r2", "tile", "vod-1"): (1, 0)}


def test_qoe_totals_are_the_minute_sums_before_w(spark):
    minutes = qoe.qoe_minutes(frame(spark, SHARED), SETTINGS)
    by_minute = {(r["content_id"], r["device_type"], r["country"], r["window_start"]): r.asDict()
                 for r in minutes.collect()}
    totals = {(r["content_id"], r["device_type"], r["country"]): r.asDict()
              for r in qoe.qoe_totals(minutes, end=T0 + timedelta(minutes=2)).collect()}
    # vod-1 on the TV in DE: s1 in the first minute, nothing in the second.
    vod1 = totals[("vod-1", "tv", "DE")]
    assert (vod1["plays"], vod1["startups"], vod1["startup_ms_sum"], vod1["playing_seconds"]) == (1, 1, 1000, 30)
    expected: dict[tuple[str, str, str], dict[str, int]] = {}
    for (content, device, country, start), row in by_minute.items():
        if start.astimezone(timezone.utc) < T0 + timedelta(minutes=2):
            sums = expected.setdefault((content, device, country), dict.fromkeys(qoe.QOE_FIELDS, 0))
            for name in qoe.QOE_FIELDS:
                sums[name] += row[name]
    assert {k: {n: v[n] for n in qoe.QOE_FIELDS} for k, v in totals.items()} == expected
    assert set(expected) == {("vod-1", "tv", "DE"), ("vod-1", "mobile", "FR")}


def test_trending_baselines_average_distinct_viewers_per_window(spark):
    end = T0 + timedelta(seconds=1200)
    rows = [fact_row("heartbeat", at, user=user, session=f"s-{user}-{content}", content=content, state="playing")
            for user, content, at in (
                ("u1", "vod-1", 10), ("u1", "vod-1", 70),           # window [T0, T0+600): u1 once
                ("u2", "vod-1", 610), ("u1", "vod-1", 700),          # window [T0+600, end): u1 and u2
                ("u3", "live-1", 650),
                ("u4", "vod-1", 1200),                               # at W: not before it
                ("u4", "vod-1", 1200 - 86400 - 1))]                  # more than a day before W
    got = {(r["content_kind"], r["content_id"]): r["baseline_viewers"]
           for r in trending_baselines.trending_baselines(frame(spark, rows), SETTINGS, end=end).collect()}
    assert got == {("vod", "vod-1"): pytest.approx(3 / 144), ("live", "live-1"): pytest.approx(1 / 144)}

"""The batch views' pure parts: W, version ids, meta, chunks, rows -> Redis field maps; and each view's rows on
small hand-made fact frames (per-user totals with the speed engagement transform, per-title totals with the
content mart's rules, CTR per rail/button/title, QoE minute sums before W, trending baselines per window).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from batch_layer.publish import content_totals, ctr, qoe, trending_baselines, user_totals
from batch_layer.publish.versioned import PublishError, chunks, meta_fields, version_id, watermark_of
from tests.unit.test_marts import SETTINGS, SHARED, T0, dim_content, fact_row, frame
from warehouse_models.redis_keys import KeyLayout

KEYS = KeyLayout("p")
NOW = datetime(2026, 3, 1, 14, 20, tzinfo=timezone.utc)


def test_watermark_is_the_end_of_the_newest_closed_hour():
    hours = [datetime(2026, 3, 1, h, tzinfo=timezone.utc) for h in (11, 12, 13)]
    assert watermark_of(hours, now=NOW) == datetime(2026, 3, 1, 14, tzinfo=timezone.utc)
    # 14:00 has not closed at 14:20, and any time within an hour names it.
    later = [*hours, datetime(2026, 3, 1, 14, 5, tzinfo=timezone.utc)]
    assert watermark_of(later, now=NOW) == datetime(2026, 3, 1, 14, tzinfo=timezone.utc)
    assert watermark_of([datetime(2026, 3, 1, 13, 59, tzinfo=timezone.utc)],
                        now=datetime(2026, 3, 1, 14, tzinfo=timezone.utc)) == datetime(2026, 3, 1, 14,
                                                                                     tzinfo=timezone.utc)
    with pytest.raises(PublishError, match="no closed hour"):
        watermark_of([datetime(2026, 3, 1, 14, tzinfo=timezone.utc)], now=NOW)
    with pytest.raises(ValueError, match="time zone"):
        watermark_of([datetime(2026, 3, 1, 12)], now=NOW)


def test_version_ids_sort_by_watermark_then_publication_and_hold_no_colon():
    w = int(datetime(2026, 3, 1, 14, tzinfo=timezone.utc).timestamp())
    first = version_id(w, NOW)
    assert first == f"w{w}-p{int(NOW.timestamp()) * 1000}"
    assert ":" not in first
    assert version_id(w, NOW + timedelta(milliseconds=1)) != first
    with pytest.raises(ValueError, match="time zone"):
        version_id(w, datetime(2026, 3, 1))


def test_meta_fields_and_chunks():
    assert meta_fields(watermark=1700000000, published_at=NOW, rows={"user_totals": 3, "qoe": 0}) == {
        "watermark": 1700000000, "published_at": "2026-03-01T14:20:00+00:00", "rows:user_totals": 3, "rows:qoe": 0}
    entries = [(f"k{i}", {"f": i}) for i in range(5)]
    assert [len(c) for c in chunks(entries, 2)] == [2, 2, 1]
    assert [e for c in chunks(entries, 2) for e in c] == entries
    assert list(chunks([], 2)) == []


def test_rows_to_redis_field_maps():
    assert list(user_totals.entries([{"user_id": "u1", "watch_seconds": 30, "events": 7, "clicks": 1}], KEYS,
                                    "v1")) == [("p:batch:v1:user:u1", {"watch_seconds": 30, "events": 7, "clicks": 1})]
    rows = [{"content_id": "vod-1", "views": 3, "watch_seconds": 40.0, "completed_views": 1,
             "completion_rate": 1 / 3},
            {"content_id": "live-1", "views": 1, "watch_seconds": 10.0, "completed_views": None,
             "completion_rate": None}]
    assert list(content_totals.entries(rows, KEYS, "v1")) == [
        ("p:batch:v1:content:vod-1", {"views": 3, "watch_seconds": 40.0, "completed_views": 1,
                                      "completion_rate": 1 / 3}),
        ("p:batch:v1:content:live-1", {"views": 1, "watch_seconds": 10.0}),
    ]
    rows = [{"rail_id": "r1", "button_id": "tile", "content_id": "vod-3", "impressions": 2, "clicks": 1},
            {"rail_id": "r1", "button_id": "tile", "content_id": None, "impressions": 0, "clicks": 4}]
    assert list(ctr.entries(rows, KEYS, "v1")) == [
        ("p:batch:v1:ctr:r1:tile", {"vod-3:impressions": 2, "vod-3:clicks": 1}),
        ("p:batch:v1:ctr:r1:tile", {"-:impressions": 0, "-:clicks": 4}),
    ]
    assert ctr.split_fields({"vod-3:impressions": "2", "vod-3:clicks": "1", "a:b:clicks": "5", "junk": "1"}) == {
        "vod-3": {"impressions": 2, "clicks": 1}, "a:b": {"impressions": 0, "clicks": 5}}
    sums = {name: i for i, name in enumerate(qoe.QOE_FIELDS)}
    ((key, fields),) = qoe.entries([{"content_id": "vod-1", "device_type": "tv", "country": "DE", **sums}], KEYS,
                                   "v1")
    assert (key, fields) == ("p:batch:v1:qoe:vod-1:tv:DE", sums)
    assert list(trending_baselines.entries([{"content_kind": "live", "content_id": "live-1",
                                             "baseline_viewers": 0.5}], KEYS, "v1")) == [
        ("p:batch:v1:trending_baseline:live", {"live-1": 0.5})]


def test_window_count_covers_the_day():
    assert trending_baselines.window_count(600) == 144
    assert trending_baselines.window_count(7 * 60) == 206  # 24 h / 7 min = 205.7: the oldest window is partial


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


def test_content_totals_add_up_the_content_mart_before_w(spark):
    rows = content_totals.content_totals(frame(spark, SHARED), dim_content(spark), end=END).collect()
    got = {r["content_id"]: tuple(r[f] for f in content_totals.FIELDS) for r in rows}
    # vod-1: s1 (complete: 600 of 600 s), s2 and s5 (started at 301 s, no position yet); vod-2 never started.
    assert got == {"vod-1": (3, 40.0, 1, pytest.approx(1 / 3)), "vod-2": (0, 0.0, None, None)}


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

"""The batch views' pure parts: W, version ids, meta, chunks, rows -> Redis field maps; and each view's rows on
small hand-made fact frames (per-user totals with the speed engagement transform, per-title totals with the
content mart's rules, CTR per rail/button/title, QoE minute sums before W, trending baselines per window).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from batch_layer.publish import content_totals, ctr, qoe, trending_baselines, user_totals
from batch_layer.publish.versioned import PublishError, chunks, meta_fields, version_id, watermark_of
from serving.views.batch import dropoff_curve
from warehouse_models.marts import DROPOFF_POINTS, dropoff_column
from warehouse_models.metrics.ctr import split_fields
from warehouse_models.metrics.engagement import split_daily
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
    assert list(user_totals.entries([{"user_id": "u1", "watch_seconds": 30, "events": 7, "clicks": 1, "days": None}],
                                    KEYS, "v1")) == [("p:batch:v1:user:u1", {"watch_seconds": 30, "events": 7,
                                                                             "clicks": 1})]
    days = {"2026-03-01": {"watch_seconds": 20, "events": 5, "clicks": 1},
            "2026-02-28": {"watch_seconds": 10, "events": 2, "clicks": 0}}
    ((_, fields),) = user_totals.entries([{"user_id": "u1", "watch_seconds": 30, "events": 7, "clicks": 1,
                                           "days": days}], KEYS, "v1")
    assert fields["2026-02-28:watch_seconds"] == 10 and fields["2026-03-01:clicks"] == 1 and len(fields) == 9
    assert split_daily({name: str(value) for name, value in fields.items()}) == days
    curve = {dropoff_column(p): 1.0 - p / 200 for p in DROPOFF_POINTS}
    rows = [{"content_id": "vod-1", "views": 3, "watch_seconds": 40.0, "completed_views": 1,
             "completion_rate": 1 / 3, **curve},
            {"content_id": "live-1", "views": 1, "watch_seconds": 10.0, "completed_views": None,
             "completion_rate": None, **dict.fromkeys(curve)}]
    assert list(content_totals.entries(rows, KEYS, "v1")) == [
        ("p:batch:v1:content:vod-1", {"views": 3, "watch_seconds": 40.0, "completed_views": 1,
                                      "completion_rate": 1 / 3, **curve}),
        ("p:batch:v1:content:live-1", {"views": 1, "watch_seconds": 10.0}),
    ]
    stored = {name: str(value) for name, value in curve.items()}
    assert dropoff_curve(stored) == [(p, 1.0 - p / 200) for p in DROPOFF_POINTS]
    assert dropoff_curve({"views": "1"}) is None
    rows = [{"rail_id": "r1", "button_id": "tile", "content_id": "vod-3", "impressions": 2, "clicks": 1},
            {"rail_id": "r1", "button_id": "tile", "content_id": None, "impressions": 0, "clicks": 4}]
    assert list(ctr.entries(rows, KEYS, "v1")) == [
        ("p:batch:v1:ctr:r1:tile", {"vod-3:impressions": 2, "vod-3:clicks": 1}),
        ("p:batch:v1:ctr:r1:tile", {"-:impressions": 0, "-:clicks": 4}),
    ]
    assert split_fields({"vod-3:impressions": "2", "vod-3:clicks": "1", "a:b:clicks": "5", "junk": "1"}) == {
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

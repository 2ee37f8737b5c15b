"""Batch views published to the real Redis: atomic for readers, with W beside them, from real Delta tables.

Contract: a publication writes every hash under a new version and swaps the pointer in one SET; while a second
publication is being written (checked after each of its pipelines, and by a reader thread running throughout),
readers see the old version whole, its W with its values; after the swap they see the new version whole; the
current version's keys have no TTL, the replaced version's keys expire after BATCH_VIEW_TTL_SECONDS, the meta holds
W, published_at and rows per view. From a fact table on Delta, ``publish_batch_views`` publishes the totals the
hand-made scenario has before W, and the readers return them with W.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from batch_layer.publish.user_totals import entries as user_entries
from batch_layer.publish.versioned import publish_version
from serving.views.batch import read_batch_user_totals
from warehouse_models.batch_versions import current_version
from warehouse_models.redis_keys import BATCH_VIEW_TTL_SECONDS
from warehouse_models.settings import Settings

USERS = [f"u{i:04d}" for i in range(2500)]
W1 = int(datetime(2026, 3, 1, 12, tzinfo=timezone.utc).timestamp())
W2 = W1 + 3600


def _users(level: int) -> list[dict[str, Any]]:
    """Every user with the same totals, distinct per publication, so a mix of versions would show."""
    return [{"user_id": u, "watch_seconds": level * 10, "events": level, "clicks": level % 3, "days": {}}
            for u in USERS]


def _views(settings: Settings, level: int) -> dict[str, Any]:
    return {"user_totals": lambda version: user_entries(_users(level), settings.keys, version)}


def test_readers_never_see_a_half_written_version(redis_service, isolated: Settings):
    client, keys = isolated.redis_client(), isolated.keys
    assert read_batch_user_totals(client, keys, USERS[0]) is None

    first = publish_version(client, keys, _views(isolated, 1), watermark=W1, chunk_size=500)
    assert first.previous_version is None and first.rows == {"user_totals": len(USERS)}
    assert current_version(client, keys) == (first.version, W1)

    seen: list[tuple[int, int]] = []
    mixed: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        reader_client = isolated.redis_client()
        while not stop.is_set():
            for user in (USERS[0], USERS[-1]):
                read = read_batch_user_totals(reader_client, keys, user)
                if read is None:
                    mixed.append(f"{user}: no version")
                    continue
                level = read.values["events"]
                whole = {k: v for k, v in _users(level)[0].items() if k != "user_id"}
                if read.values != whole or read.watermark != {1: W1, 2: W2}.get(level):
                    mixed.append(f"{user}: {read}")
                seen.append((read.watermark, level))

    def during_publication(view: str, written: int) -> None:
        # Mid-publication: the pointer and every value are still the first version's.
        assert current_version(client, keys) == (first.version, W1)
        for user in (USERS[0], USERS[written - 1], USERS[-1]):
            read = read_batch_user_totals(client, keys, user)
            assert read is not None
            assert (read.version, read.watermark, read.values) == (
                first.version, W1, {"watch_seconds": 10, "events": 1, "clicks": 1, "days": {}})
        chunks_seen.append(written)

    chunks_seen: list[int] = []
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        second = publish_version(client, keys, _views(isolated, 2), watermark=W2, chunk_size=500,
                                 on_chunk=during_publication)
    finally:
        stop.set()
        thread.join(30)
    assert chunks_seen == [500, 1000, 1500, 2000, 2500]
    assert not mixed, mixed[:3]
    assert seen and {w for w, _ in seen} <= {W1, W2} and all({W1: 1, W2: 2}[w] == level for w, level in seen)

    assert second.previous_version == first.version
    read = read_batch_user_totals(client, keys, USERS[1234])
    assert read is not None and (read.version, read.watermark, read.values) == (
        second.version, W2, {"watch_seconds": 20, "events": 2, "clicks": 2, "days": {}})
    missing = read_batch_user_totals(client, keys, "nobody")
    assert missing is not None and missing.values == {"watch_seconds": 0, "events": 0, "clicks": 0, "days": {}}

    meta = {k.decode(): v.decode() for k, v in client.hgetall(keys.batch_meta(second.version)).items()}
    assert meta == {"watermark": str(W2), "published_at": second.published_at.isoformat(),
                    "rows:user_totals": str(len(USERS))}
    # The current version lives as long as it is current; the replaced one lingers, then expires.
    assert client.ttl(keys.batch_user_totals(second.version, USERS[0])) == -1
    assert client.ttl(keys.batch_meta(second.version)) == -1
    old_ttls = {client.ttl(k) for k in client.scan_iter(match=keys.batch_version_pattern(first.version))}
    assert len(old_ttls) > 0 and all(0 < t <= BATCH_VIEW_TTL_SECONDS for t in old_ttls)
    assert len(list(client.scan_iter(match=keys.batch_version_pattern(first.version)))) == len(USERS) + 1


def test_publish_batch_views_from_delta_tables(redis_service, isolated: Settings, spark):
    from batch_layer.marts.sessions import conform
    from batch_layer.publish.job import VIEW_NAMES, publish_batch_views
    from serving.views.batch import (
        read_batch_content_totals,
        read_batch_ctr,
        read_batch_qoe,
        read_batch_trending_baselines,
    )
    from tests.spark.test_marts import SHARED, T0, dim_content, fact_row, frame
    from warehouse_models.tables import DIM_CONTENT, FACT_STREAM_EVENTS

    root = isolated.delta_root_uri
    clicks = [fact_row("impression", 10, content="vod-3", rail_id="r1", button_id="tile"),
              fact_row("click", 11, content="vod-3", rail_id="r1", button_id="tile")]
    conform(frame(spark, SHARED + clicks), FACT_STREAM_EVENTS).write.format("delta").partitionBy("event_date") \
        .save(FACT_STREAM_EVENTS.path(root))
    conform(dim_content(spark), DIM_CONTENT).write.format("delta").save(DIM_CONTENT.path(root))
    watermark = T0 + timedelta(hours=1)

    publication = publish_batch_views(spark, isolated, watermark=watermark)
    client, keys = isolated.redis_client(), isolated.keys
    assert publication.watermark == int(watermark.timestamp())
    assert set(publication.rows) == set(VIEW_NAMES)
    # Before 13:00: every event of SHARED but the session that starts at 23:59:55.
    assert publication.rows["user_totals"] == 4

    def values(read: Any) -> Any:
        assert read is not None and (read.version, read.watermark) == (publication.version, publication.watermark)
        return read.values

    # SHARED plays on D (before W); the days are those of the events.
    day = T0.date().isoformat()
    assert values(read_batch_user_totals(client, keys, "u1")) == {
        "watch_seconds": 30, "events": 12, "clicks": 2, "days": {day: {"watch_seconds": 30, "events": 12, "clicks": 2}}}
    assert values(read_batch_user_totals(client, keys, "u3")) == {
        "watch_seconds": 10, "events": 3, "clicks": 0, "days": {day: {"watch_seconds": 10, "events": 3, "clicks": 0}}}
    vod1 = values(read_batch_content_totals(client, keys, "vod-1"))
    curve = vod1.pop("dropoff")
    assert vod1 == {"known": True, "views": 3, "watch_seconds": 50.0, "completed_views": 1,
                    "completion_rate": pytest.approx(1 / 3)}
    # s1 reached 600 of 600 s, s2 200 s, s5 30 s: each point's share counted here.
    assert curve == [(p, pytest.approx(sum(f >= 6 * p for f in (600.0, 200.0, 30.0)) / 3)) for p in range(0, 101, 5)]
    live = values(read_batch_content_totals(client, keys, "live-1"))
    assert live["completed_views"] is None and live["dropoff"] is None
    tile = values(read_batch_ctr(client, keys, "r1", "tile"))
    assert (tile["impressions"], tile["clicks"], tile["rate"]) == (1, 1, 1.0)
    assert tile["by_content"] == {"vod-3": {"impressions": 1, "clicks": 1}}
    qoe = values(read_batch_qoe(client, keys, "vod-1", "tv", "DE"))
    assert (qoe["plays"], qoe["startups"], qoe["startup_ms_sum"], qoe["playing_seconds"]) == (2, 2, 2000, 40)
    baselines = values(read_batch_trending_baselines(client, keys, "vod"))
    # Every play of vod-1 before W falls in the window 12:00-12:10: u1, u2 and u4; vod-2 only u1.
    assert baselines == {"vod-1": pytest.approx(3 / 144), "vod-2": pytest.approx(1 / 144)}

"""The shared query's own event-time cut-off, through real Kafka, Spark and Redis.

Contract: a micro-batch counts an event when it is no older than the newest event time earlier micro-batches
showed minus the allowed lateness; an older one is left to the batch layer and counted in the query's progress:
``late_rows_before_views_total`` when Spark's watermark (the de-duplication state's) drops it before the views,
``late_rows_total`` when the additive views' own per-topic cut-off does.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

from serving.views.speed import read_recent
from simulator.sinks import write_kafka
from speed_layer.job import SHARED_QUERY, SHARED_QUERY_SPARK_JOBS, QueryPlan, query_name, run_speed_available_now
from speed_layer.progress import read_progress
from warehouse_models.events import format_timestamp
from warehouse_models.metrics.engagement import read_engagement

# Recent enough for the envelope (events years back are dead letters), aligned to the minute.
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=30)


def epoch(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp())


def _heartbeat(user: str, seconds: float) -> dict:
    return {"event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": "heartbeat",
            "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{user}",
            "user_id": user, "device_type": "tv", "session_id": f"ses-{user}", "content_id": "vod-1",
            "position_seconds": float(seconds), "player_state": "playing"}


def test_events_older_than_the_lateness_are_left_to_batch_and_counted(spark, kafka_service, redis_service, isolated):
    from infra.kafka import ensure_topics

    settings = isolated.model_copy(update={"speed_allowed_lateness_seconds": 120})
    ensure_topics(settings)
    client = settings.redis_client()

    write_kafka([_heartbeat("u1", 0), _heartbeat("u1", 600)], settings)
    run_speed_available_now(spark, settings, names=["engagement", "recent"], timeout_s=300)
    # The playback topic's watermark is now 600 s - 120 s = 480 s: 100 s is too late, 500 s is not.
    write_kafka([_heartbeat("u1", 100), _heartbeat("u1", 500)], settings)
    run_speed_available_now(spark, settings, names=["engagement", "recent"], timeout_s=300)

    totals = read_engagement(client, settings.keys, "u1", since_epoch=epoch(-60), now_epoch=epoch(700))
    assert totals == {"watch_seconds": 30, "events": 3, "clicks": 0}
    late_window = read_engagement(client, settings.keys, "u1", since_epoch=epoch(100), now_epoch=epoch(700))
    assert late_window["events"] == 2  # 500 s and 600 s; the 100 s heartbeat is not in the speed view

    # Spark's watermark (the de-duplication state's, 600 s - 120 s) drops the 100 s heartbeat before the views;
    # the progress listener counts it (its events arrive asynchronously, so wait for them).
    name = query_name(settings, QueryPlan(SHARED_QUERY, ()))
    deadline = time.monotonic() + 60
    shared = {}
    while time.monotonic() < deadline:
        shared = {row["name"]: row for row in read_progress(client, settings.keys)}.get(name, {})
        if shared.get("late_rows_before_views_total") == "1":
            break
        time.sleep(0.5)
    assert shared.get("late_rows_before_views_total") == "1", shared
    assert shared["late_rows_total"] == "0"
    assert shared["watermark"] == (T0 + timedelta(seconds=480)).isoformat()
    # Where the last batch's time went: its one Spark job, the cut-off, each view, and the views side by side.
    assert [part.split("=")[0] for part in shared["view_ms"].split()] == ["spark", "late_cut", "recent",
                                                                          "engagement", "views"]
    assert shared["spark_jobs"] == str(SHARED_QUERY_SPARK_JOBS)
    assert all(int(part.split("=")[1]) >= 0 for part in shared["view_ms"].split())
    # The cut-off record and the fence belong to the query's checkpoint (Spark's query id, the same across restarts).
    from speed_layer.lateness import Cutoff
    from warehouse_models.redis_io import text

    record = Cutoff.from_fields({text(k): text(v) for k, v in client.hgetall(settings.keys.speed_cutoff(name)).items()})
    assert record is not None and len(record.checkpoint_id) == 36, record
    fence = client.get(settings.keys.speed_commit(f"{name}/engagement"))
    assert fence is not None and text(fence).startswith(record.checkpoint_id + ":")
    # A latest-value view is not cut: the recent items still hold the title.
    assert [content for content, _ in read_recent(client, settings.keys, "u1")] == ["vod-1"]

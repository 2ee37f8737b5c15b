"""Every read plan answers the same with a blocking client, with redis-py's asyncio client and with the API's
pipelined client (:class:`serving.api.redis_rounds.RoundClient`), on the same real Redis.

redis-py decodes some replies differently in its asyncio client (``ZRANGE ... WITHSCORES`` comes paired, not
flat); the readers are written once, so every executor must hand them what they can read.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from batch_layer.publish.versioned import publish_version
from serving.api.auth import create_key, key_record
from serving.api.redis_rounds import client_for
from serving.views import batch, speed
from serving.views.playback import authorize, decisions
from warehouse_models.batch_versions import current_version_plan
from warehouse_models.metrics.ctr import ctr_counts
from warehouse_models.metrics.engagement import engagement_totals, engagement_windows
from warehouse_models.metrics.qoe import qoe_buckets
from warehouse_models.metrics.trending import trending_ranking
from warehouse_models.redis_keys import bucket_start
from warehouse_models.redis_plan import Plan, arun, gather, run, scan
from warehouse_models.settings import Settings


def test_blocking_and_asyncio_clients_read_the_same(redis_service, isolated: Settings):
    client, keys = isolated.redis_client(), isolated.keys
    now = time.time()
    minute = bucket_start(now)
    publish_version(client, keys, {"user_totals": lambda v: [(keys.batch_user_totals(v, "u1"), {"events": 3})],
                                   "baselines": lambda v: [(keys.batch_trending_baselines(v, "vod"),
                                                            {"vod-1": 2.5, "vod-3": 1.0})]},
                    watermark=minute - 3600)
    client.hset(keys.user_engagement_bucket("u1", minute), mapping={f"{minute}:events": 2, f"{minute}:clicks": 1})
    client.hset(keys.ctr_bucket("r1", "tile", minute), mapping={"vod-1:impressions": 4, "vod-1:clicks": 1})
    client.hset(keys.ctr_hour("r1", "tile", bucket_start(now, 3600)), mapping={"vod-1:impressions": 6})
    client.hset(keys.user_engagement_hour("u1", bucket_start(now, 3600)), mapping={"events": 5, "clicks": 1})
    client.hset(keys.qoe_bucket("vod-1", "tv", "US", minute), mapping={"plays": 2, "startups": 1})
    client.zadd(keys.trending("vod"), {"vod-1": 7, "vod-2": 3})
    client.zadd(keys.recent_items("u1"), {"vod-1": int(now * 1000), "vod-2": int(now * 1000) - 5000})
    client.zadd(keys.live_sessions(), {"a/s1": int(now * 1000), "a/s2": int(now * 1000) - 60_000})
    client.hset(keys.resume_position("u1"), "vod-1", f"{int(now * 1000)}:42.5")
    client.set(keys.account_concurrency("a"), json.dumps({"limit": 2, "active": ["s1"], "over_limit": [],
                                                          "as_of_ms": 1}))
    client.xadd(keys.spike_alerts(), {"type": "raised", "scope": "topic:x", "rate": "9", "baseline": "1.5"})
    client.hset(keys.spike_active(), "topic:x", json.dumps({"scope": "topic:x", "rate": 9}))
    client.hset(keys.ctr_rate("r1", "tile"), mapping={"impressions": 4, "clicks": 1, "rate": 0.25})
    client.hset(keys.speed_progress("q"), mapping={"timestamp": "2026-03-01T12:00:00Z", "batch_duration_ms": "10",
                                                    "kafka_lag": "5"})
    client.hset(keys.account_plan_limits(), "a", 2)
    key = create_key(client, keys, name="reader", scopes=["read"])

    plans: dict[str, Any] = {
        "current": lambda: current_version_plan(keys),
        "user_totals": lambda: batch.batch_user_totals(keys, "u1"),
        "windows": lambda: engagement_windows(keys, "u1", now_epoch=now),
        # Half a minute back: never an hour boundary, so the minute buckets are read, not the hourly ones.
        "ctr": lambda: ctr_counts(keys, "r1", "tile", since_epoch=minute - 30, now_epoch=now),
        "qoe": lambda: qoe_buckets(keys, "vod-1"),
        "trending": lambda: trending_ranking(keys, "vod", 5),
        "recent": lambda: speed.recent_titles(keys, "u1", 5),
        "live": lambda: speed.live_streams(keys, heartbeat_timeout_seconds=30),
        "resume": lambda: speed.resume_positions(keys, "u1"),
        "concurrency": lambda: speed.account_concurrency(keys, "a"),
        "alerts": lambda: speed.recent_alerts(keys, 5),
        "active": lambda: speed.active_alerts(keys),
        "rates": lambda: speed.ctr_rates(keys),
        "freshness": lambda: speed.speed_freshness(keys, "q", now=now),
        "scan": lambda: scan(keys.pattern("speed")),
        "key": lambda: key_record(keys, key),
        "decisions": lambda: decisions(keys, minutes=2, now=now),
        "ctr_hourly": lambda: ctr_counts(keys, "r1", "tile", since_epoch=bucket_start(now, 3600), now_epoch=now),
        "totals_hourly": lambda: engagement_totals(keys, "u1", since_epoch=bucket_start(now, 3600), now_epoch=now),
        "qoe_slice": lambda: qoe_buckets(keys, "vod-1", device_type="tv", country="US", since=minute - 60,
                                         now_epoch=now),
        "baselines": lambda: batch.batch_trending_baselines(keys, "vod", ["vod-1", "vod-9"]),
        "all_baselines": lambda: batch.batch_trending_baselines(keys, "vod"),
        "gathered": lambda: gather(trending_ranking(keys, "vod", 1), batch.batch_user_totals(keys, "u1"),
                                   speed.recent_titles(keys, "u1", 1)),
    }
    aclient = isolated.redis_async_client()

    async def on(executor: Any) -> dict[str, Any]:
        try:
            return {name: await arun(executor, make()) for name, make in plans.items()}
        finally:
            await executor.aclose()

    try:
        blocking = {name: run(client, make()) for name, make in plans.items()}
        assert asyncio.run(on(aclient)) == blocking
        assert asyncio.run(on(client_for(isolated.redis_url, password=None, timeout=5))) == blocking
        # And they read what was written.
        assert blocking["trending"] == [("vod-1", 7), ("vod-2", 3)]
        assert [title for title, _ in blocking["recent"]] == ["vod-1", "vod-2"]
        assert blocking["live"][0] == 1 and blocking["user_totals"].values["events"] == 3
        assert blocking["ctr"]["impressions"] == 4 and blocking["freshness"].kafka_lag == 5
        assert blocking["key"].scopes == frozenset({"read"})
        assert blocking["baselines"].values == {"vod-1": 2.5}
        assert blocking["ctr_hourly"]["impressions"] == 6 and blocking["totals_hourly"]["events"] == 5
        assert blocking["qoe_slice"] == blocking["qoe"]
        assert blocking["all_baselines"].values == {"vod-1": 2.5, "vod-3": 1.0}
        assert blocking["gathered"] == [blocking["trending"][:1], blocking["user_totals"], blocking["recent"][:1]]
        # A script Redis does not hold (first use, or after a restart) is loaded by either executor.
        client.script_flush()
        sync_decision = run(client, _authorize(keys, "s-sync", now))
        client.script_flush()
        async_decision = asyncio.run(arun(isolated.redis_async_client(), _authorize(keys, "s-async", now)))
        client.script_flush()
        rounds_decision = asyncio.run(arun(client_for(isolated.redis_url, password=None, timeout=5),
                                           _authorize(keys, "s-rounds", now, account="b")))
        assert (sync_decision.allowed, async_decision.allowed, rounds_decision.allowed) == (True, True, True)
        assert [a.session_id for a in async_decision.active] == ["s-sync", "s-async"]
        assert [a.session_id for a in rounds_decision.active] == ["s-rounds"]
    finally:
        for name in client.scan_iter(match=keys.pattern()):
            client.delete(name)


def _authorize(keys: Any, session: str, now: float, account: str = "a") -> Plan[Any]:
    return authorize(keys, account_id=account, session_id=session, device_type="tv", heartbeat_timeout_seconds=30,
                     lease_seconds=30, now_ms=int(now * 1000))

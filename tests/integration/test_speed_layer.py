"""The speed layer end to end: simulator -> real Kafka -> every Spark view -> real Redis, against the ground truth.

* Every view of a simulated quarter hour (with account sharing over the limit and a live-event spike) equals
  what the simulator says happened: watch seconds per user, impressions and clicks per rail and button,
  resume positions, sessions over their plan's limit, distinct viewers in the newest trending window, a spike
  alert on the spiking channel; malformed records written straight to Kafka (copies of real events with one
  thing the collector refuses among them) land on the dead-letter topic and count nowhere; every 7th event
  re-sent counts once.
* The speed layer as a process (`python -m speed_layer`), SIGKILLed after a few micro-batches and restarted
  from its checkpoints, leaves the additive and latest-value views exactly equal to the truth again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from simulator import SimulationConfig, ground_truth, simulate
from simulator.sinks import write_kafka
from warehouse_models.events import parse_timestamp
from warehouse_models.settings import Settings, settings_environment

ROOT = Path(__file__).resolve().parents[2]

MALFORMED = [
    b"not json at all",
    b'{"event_id": "bad-1", "schema_version": 1, "event_type": "heartbeat"}',
    b'{"event_id": "bad-2", "schema_version": 9, "event_type": "heartbeat", "event_timestamp": "2026-01-01T00:00:00Z"}',
]


def _sloppy_copies(events: list[dict[str, Any]]) -> list[bytes]:
    """Copies of a real playing heartbeat with a new event id and one thing the collector refuses: counted, each
    would add watch time, a viewer and a resume position to a real user; the views must leave them out."""
    base = next(e for e in events if e["event_type"] == "heartbeat" and e.get("player_state") == "playing")
    changes: list[dict[str, Any]] = [
        {"position_seconds": str(base["position_seconds"])},   # a number sent as a string
        {"is_live": "no"},                                     # wrong JSON type on an optional field
        {"colour": "red"},                                     # a field outside the envelope
        {"event_timestamp": base["event_timestamp"][:-5]},     # no time zone
        {"session_id": 12345},                                 # an id sent as a number
    ]
    return [json.dumps({**base, "event_id": f"foreign-{i}", **change}).encode() for i, change in enumerate(changes)]


def _resent(events: list[dict[str, Any]], settings: Settings) -> dict[str, list[bytes]]:
    """Every 7th viewing event again, byte for byte, as a client retrying after a lost answer would send it (one
    in three re-serialised with its fields in another order): topic -> values."""
    from warehouse_models.events import CATALOG_TYPES, encode, topic_kind

    out: dict[str, list[bytes]] = {}
    for i, event in enumerate(e for e in events if e["event_type"] not in CATALOG_TYPES):
        if i % 7 == 0:
            value = encode(event) if i % 3 else json.dumps(dict(reversed(list(event.items())))).encode()
            out.setdefault(settings.topics.for_kind(topic_kind(event)).name, []).append(value)
    return out


def _world() -> SimulationConfig:
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
    return SimulationConfig(start=end - timedelta(minutes=15), duration=timedelta(minutes=15), users=240, titles=60,
                            channels=4, sessions_per_user_hour=1.5, sharer_share=0.1, seed=11)


def _produce_raw(settings: Settings, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": ",".join(settings.kafka_bootstrap_list)})
    for value in values:
        producer.produce(topic, value, b"foreign-producer")
    assert producer.flush(30) == 0


def _consume_all(settings: Settings, topic: str) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": ",".join(settings.kafka_bootstrap_list), "group.id": "test-reader",
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
        consumer.assign(partitions)
        values: list[bytes] = []
        seen = defaultdict(int)
        deadline = time.monotonic() + 30
        while any(seen[p] < end for p, end in ends.items()) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            seen[message.partition()] = message.offset() + 1
            values.append(message.value())
        return values
    finally:
        consumer.close()


def _expected_trending(events: list[dict[str, Any]], window_s: int
                       ) -> dict[tuple[str, str | None], dict[str, int]]:
    """Distinct users per title in the newest full trending window of each kind (the view's definition), over
    every country (None) and per country of the events."""
    from warehouse_models.events import PLAYBACK_TYPES

    newest: dict[str, int] = {}
    watching: list[tuple[str, str | None, str, str, int]] = []
    for event in events:
        if event["event_type"] not in {t.value for t in PLAYBACK_TYPES}:
            continue
        kind = "live" if event.get("is_live") else "vod"
        minute = int(parse_timestamp(event["event_timestamp"]).timestamp()) // 60 * 60
        watching.append((kind, event.get("country"), event["content_id"], event["user_id"], minute))
        newest[kind] = max(newest.get(kind, 0), minute)
    out: dict[tuple[str, str | None], dict[str, set[str]]] = {}
    for kind, country, content, user, minute in watching:
        end = newest[kind] + 60
        if end - window_s <= minute < end:
            for scope in {(kind, None), (kind, country)}:
                out.setdefault(scope, {}).setdefault(content, set()).add(user)
    return {scope: {c: len(users) for c, users in titles.items()} for scope, titles in out.items()}


def _assert_views_equal_truth(settings: Settings, events: list[dict[str, Any]], truth: dict[str, Any], *,
                              start: datetime, full: bool = True) -> None:
    from serving.views.speed import read_resume
    from warehouse_models.metrics.ctr import read_ctr
    from warehouse_models.metrics.engagement import read_engagement

    client, keys = settings.redis_client(), settings.keys
    now = time.time()
    since = start.timestamp() - 60
    watched = {user: read_engagement(client, keys, user, since_epoch=since, now_epoch=now)["watch_seconds"]
               for user in truth["watch_seconds_per_user"]}
    assert watched == truth["watch_seconds_per_user"]

    ctr = {(row["rail_id"], row["button_id"]): read_ctr(client, keys, row["rail_id"], row["button_id"],
                                                        since_epoch=since, now_epoch=now) for row in truth["ctr"]}
    assert {k: (v["impressions"], v["clicks"]) for k, v in ctr.items()} == \
        {(r["rail_id"], r["button_id"]): (r["impressions"], r["clicks"]) for r in truth["ctr"]}

    for user, titles in truth["resume_positions"].items():
        stored = read_resume(client, keys, user)
        assert stored is not None
        for content, expected in titles.items():
            assert stored[content]["position_seconds"] == pytest.approx(expected["position_seconds"]), (user, content)

    over = {}
    for account in {e["account_id"] for e in events if e.get("account_id")}:
        sessions = [s.decode() for s in client.zrange(keys.account_over_limit(account), 0, -1)]
        if sessions:
            over[account] = sorted(sessions)
    assert over == {a: sorted(v["over_limit_sessions"]) for a, v in truth["concurrency_violations"].items()}
    assert over, "the simulated world has accounts streaming over their limit"

    if not full:
        return
    from warehouse_models.metrics.trending import read_trending

    expected = _expected_trending(events, settings.speed_trending_window_seconds)
    assert len({country for _, country in expected}) > 2, "the simulated world plays in several countries"
    for (kind, country), titles in expected.items():
        got = dict(read_trending(client, keys, kind, n=100_000, country=country))
        assert got == titles, (kind, country)

    # QoE over the whole world (the shared query's event sums and view_end's judged sessions, added in the same
    # buckets) against the simulator's own counts.
    from warehouse_models.metrics.qoe import merge_sums, read_qoe

    titles = {e["content_id"] for e in events if e.get("content_id") and e.get("session_id")}
    qoe = merge_sums(sums for title in titles for sums in read_qoe(client, keys, title).values())
    outcomes = truth["sessions"]["outcomes"]
    assert qoe["playing_seconds"] == truth["watch_seconds_total"]
    assert qoe["startups"] == truth["sessions"]["with_first_frame"]
    assert qoe["start_failures"] == outcomes.get("start_failure", 0)
    assert qoe["failures_after_start"] == outcomes.get("failed", 0)
    # Exits: every play_end before a first frame, and the requests that went silent without one (the simulator
    # counts those as still open).
    assert qoe["exits_before_start"] >= outcomes.get("exit_before_start", 0)
    assert qoe["start_failures"] + qoe["failures_after_start"] > 0


def _publish_model_and_read(settings: Settings, config: SimulationConfig,
                            events: list[dict[str, Any]]) -> tuple[str, dict[str, Any], Any]:
    import pandas as pd

    from batch_layer.models.job import run_daily
    from batch_layer.models.train import TrainingData, UserInfo
    from serving.views.service import Views
    from simulator.interactions import taste_interactions
    from simulator.sessions import build_world_for
    from simulator.world import content_upsert
    from warehouse_models.recommendations import segment_of
    from warehouse_models.redis_plan import run

    world = build_world_for(config)
    day = config.start.date()
    frame = pd.DataFrame(taste_interactions(world, start=day - timedelta(days=5), days=5, watches_per_user=6))
    catalog = [content_upsert(c, event_id="e", at=config.start) for c in world.titles]
    users = {u.user_id: UserInfo(segment_of(u.country, u.device.device_type)) for u in world.users}
    models = settings.model_copy(update={"models_dir": Path(settings.delta_root_uri).parent / "models"})
    published = run_daily(models, day=day - timedelta(days=1), progress=lambda _: None,
                          data=TrainingData(frame, catalog, users, "", ""))
    assert published.published
    # A viewer of the live variant (the batch variant serves the daily list as it is) who searched and then watched
    # a VOD title in the simulated quarter hour.
    from warehouse_models.metrics.variants import parse_variants, variant_of

    variants = parse_variants(settings.recs_variants)
    searched = {e["user_id"] for e in events if e["event_type"] == "search"
                and variant_of(e["user_id"], variants, settings.recs_variant_salt) == "live"}
    viewer = next(e["user_id"] for e in events if e["event_type"] == "heartbeat" and not e.get("is_live")
                  and e["user_id"] in searched)
    views = Views(settings)
    before = run(settings.redis_client(), views.recommendations(viewer, limit=10))
    assert before.data["recent"] == [] and before.data["searches"] == [] and before.data["variant"] == "live"
    return viewer, before.data, views


def _assert_live_recommendations_moved(settings: Settings, events: list[dict[str, Any]], viewer: str,
                                       before: dict[str, Any], views: Any) -> None:
    from warehouse_models.redis_keys import RECENT_SEARCHES_MAX
    from warehouse_models.redis_plan import run

    client = settings.redis_client()
    # Recent searches equal the events' newest normalised queries per user (counted here, apart from the writer).
    newest: dict[str, dict[str, int]] = defaultdict(dict)
    for e in events:
        if e["event_type"] == "search":
            query = " ".join(e["search_query"].split()).lower()
            ms = int(parse_timestamp(e["event_timestamp"]).timestamp() * 1000)
            newest[e["user_id"]][query] = max(newest[e["user_id"]].get(query, ms), ms)
    for user, queries in newest.items():
        keep = dict(sorted(queries.items(), key=lambda kv: (kv[1], kv[0]))[-RECENT_SEARCHES_MAX:])
        stored = {m.decode(): int(s) for m, s in client.zrange(settings.keys.recent_searches(user), 0, -1,
                                                              withscores=True)}
        assert stored == keep, user
    after = run(client, views.recommendations(viewer, limit=10)).data
    # Watched, as the recent-titles view defines it: a first frame or a playing heartbeat (a session may end
    # between its first frame and its first heartbeat).
    watched = {e["content_id"] for e in events if e.get("user_id") == viewer
               and (e["event_type"] == "first_frame"
                    or (e["event_type"] == "heartbeat" and e.get("player_state") == "playing"))}
    assert {r["content_id"] for r in after["recent"]} <= watched and after["recent"]
    assert after["searches"] and after["model_version"] == before["model_version"]
    assert [i["content_id"] for i in after["items"]] != [i["content_id"] for i in before["items"]]
    assert not {i["content_id"] for i in after["items"]} & watched


def _with_a_failure(events: list[dict[str, Any]]) -> None:
    """End the first session that started playing with a fatal error instead of its ``play_end``, so the world
    holds a failure after the first frame whatever its rates drew: the simulator's start time follows the clock,
    and in a quarter of an hour of 240 users some draws have none. The ground truth is computed afterwards."""
    started = set()
    for event in events:
        if event["event_type"] == "first_frame":
            started.add(event["session_id"])
        elif event["event_type"] == "play_end" and event["session_id"] in started:
            event.update(event_type="error", error_code="DECODER_CRASH", error_fatal=True)
            return
    raise AssertionError("the simulated world has no session that played to its end")


@pytest.fixture
def world() -> tuple[SimulationConfig, list[dict[str, Any]], dict[str, Any]]:
    config = _world()
    events = list(simulate(config))
    _with_a_failure(events)
    return config, events, ground_truth(events, config=config)


def test_every_view_equals_the_ground_truth(kafka_service, redis_service, isolated, spark, world):
    from infra.kafka import ensure_topics
    from serving.views.speed import read_alerts
    from speed_layer.job import run_speed_available_now
    from speed_layer.progress import read_progress

    config, events, truth = world
    ensure_topics(isolated)
    write_kafka(events, isolated)
    malformed = MALFORMED + _sloppy_copies(events)
    _produce_raw(isolated, isolated.topics.playback.name, malformed)
    resent = _resent(events, isolated)
    assert sum(len(v) for v in resent.values()) > 500
    for topic, values in resent.items():
        _produce_raw(isolated, topic, values)

    # A recommendation model of this world, published before the speed layer runs: a viewer's live answer is then
    # the model's alone, and after the run it must move with what the viewer just watched and searched.
    viewer, before, views_ = _publish_model_and_read(isolated, config, events)

    run_speed_available_now(spark, isolated, timeout_s=900)

    _assert_views_equal_truth(isolated, events, truth, start=config.start)
    _assert_live_recommendations_moved(isolated, events, viewer, before, views_)

    spike = truth["spike"]
    assert spike is not None
    alerts = read_alerts(isolated.redis_client(), isolated.keys, n=100)
    raised = [a for a in alerts if a["type"] == "raised" and a["scope"] == f"content:{spike['channel_id']}"]
    assert raised, f"no spike alert for {spike['channel_id']}: {alerts}"

    letters = [json.loads(v) for v in _consume_all(isolated, isolated.topics.dead_letter.name)]
    assert sorted(letter["raw_payload"] for letter in letters) == sorted(v.decode() for v in malformed)
    assert all(letter["stage"] == "speed_layer" and letter["reason"] for letter in letters)

    view_ends = [json.loads(v) for v in _consume_all(isolated, isolated.topics.derived.name)]
    ended = {e["session_id"] for e in view_ends if e["end_reason"] == "explicit_end"}
    explicit = {e["session_id"] for e in events if e["event_type"] == "play_end"}
    assert explicit and explicit <= ended

    from speed_layer.job import plan_queries, query_name, views

    # The progress listener's events arrive asynchronously: give the last ones a moment.
    expected = {query_name(isolated, plan) for plan in plan_queries(views())}
    deadline = time.monotonic() + 30
    progress = {row["name"]: row for row in read_progress(isolated.redis_client(), isolated.keys)}
    while set(progress) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        progress = {row["name"]: row for row in read_progress(isolated.redis_client(), isolated.keys)}
    assert expected == set(progress)
    # Every view's rows of a micro-batch come from one Spark job (counted by job group per batch).
    from speed_layer.job import SHARED_QUERY, SHARED_QUERY_SPARK_JOBS, QueryPlan

    assert progress[query_name(isolated, QueryPlan(SHARED_QUERY, ()))]["spark_jobs"] == str(SHARED_QUERY_SPARK_JOBS)


def test_sigkill_and_restart_leaves_the_views_equal_to_the_truth(kafka_service, redis_service, isolated, world,
                                                                 tmp_path):
    from infra.kafka import ensure_topics
    from speed_layer.progress import read_progress

    config, events, truth = world
    from speed_layer.job import plan_queries
    from speed_layer.job import views as view_queries

    views = "engagement,ctr,resume,concurrency"
    queries = len(plan_queries(view_queries(views.split(","))))
    # The default lateness and rate limits: the events arrive live, paced, while the job runs its 1 s micro-batches,
    # and the kill lands while they still arrive.
    settings = isolated.model_copy(update={"data_dir": tmp_path / "data", "log_level": "INFO"})
    ensure_topics(settings)
    env = {**os.environ, **settings_environment(settings)}
    log = tmp_path / "speed.log"
    hurry = threading.Event()

    def live(rate: float = 150.0) -> Any:
        """The events at ``rate`` until the kill, then the rest at once (the restarted job reads them as a
        backlog): the kill lands while they arrive, and the test does not wait for the producer's pace after it."""
        began = time.monotonic()
        for i, event in enumerate(events):
            if not hurry.is_set() and (ahead := began + i / rate - time.monotonic()) > 0.005:
                time.sleep(ahead)
            yield event

    producer = threading.Thread(target=write_kafka, args=(live(), settings), daemon=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "speed_layer", "--views", views], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        producer.start()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rows = read_progress(settings.redis_client(), settings.keys)
            if rows and min(int(r["batch_id"]) for r in rows) >= 2 and len(rows) == queries:
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"no progress within 600 s: {log.read_text()[-3000:]}")
        assert producer.is_alive(), "the events were all produced before the kill: slow the producer down"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        hurry.set()
    producer.join(300)
    assert not producer.is_alive()
    # Killed mid-stream: the views do not hold every event yet.
    from warehouse_models.metrics.engagement import read_engagement

    client = settings.redis_client()
    seen = sum(read_engagement(client, settings.keys, user, since_epoch=config.start.timestamp() - 60)["watch_seconds"]
               for user in truth["watch_seconds_per_user"])
    assert seen < truth["watch_seconds_total"]

    restarted = subprocess.run([sys.executable, "-m", "speed_layer", "--views", views, "--available-now"], cwd=ROOT,
                               env=env, capture_output=True, timeout=900)
    assert restarted.returncode == 0, restarted.stdout[-3000:] + restarted.stderr[-3000:]

    _assert_views_equal_truth(settings, events, truth, start=config.start, full=False)

"""The collector against a real broker: every event posted is accounted for, and a Kafka outage loses nothing.

* A corpus of valid events mixed with more than two hundred malformed ones: each valid event lands in its
  topic exactly once, keyed by account; each malformed one lands on the dead-letter topic with its raw payload
  and a reason naming the field at fault. Bodies over the limit answer 413, wrong content types 415, never 500.
* A broker of the test's own is stopped while a client posts and started again: every event the collector
  answered "accepted" is in Kafka exactly once, and every other one was answered 503 with status "retry".
"""

from __future__ import annotations

import base64
import gzip
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest

from infra.process import free_port
from warehouse_models.events import format_timestamp, kafka_key
from warehouse_models.settings import Settings

NDJSON = {"content-type": "application/x-ndjson"}




def _ts(delta: timedelta = timedelta()) -> str:
    return format_timestamp(datetime.now(timezone.utc) - timedelta(minutes=5) + delta)


def heartbeat(event_id: str, account: int = 1, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id, "schema_version": 1, "event_type": "heartbeat", "event_timestamp": _ts(),
        "account_id": f"acc-{account}", "user_id": f"usr-{account}", "device_type": "tv",
        "session_id": f"ses-{account}", "content_id": "vod-7", "position_seconds": 60.0 + account,
        "player_state": "playing",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def valid_events(count: int) -> list[dict[str, Any]]:
    """Valid events of several types and topics."""
    out: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 5
        if kind in (0, 1):
            out.append(heartbeat(f"ok-{i}", account=i))
        elif kind == 2:
            out.append({"event_id": f"ok-{i}", "schema_version": 1, "event_type": "click", "event_timestamp": _ts(),
                        "account_id": f"acc-{i}", "user_id": f"usr-{i}", "rail_id": "top-10", "button_id": "play",
                        "content_id": "vod-1", "slot": i % 10})
        elif kind == 3:
            out.append({"event_id": f"ok-{i}", "schema_version": 1, "event_type": "content_upsert",
                        "event_timestamp": _ts(), "content_id": f"vod-{i}", "content_title": f"Title {i}",
                        "content_type": "vod", "genre_primary": "drama", "duration_minutes": 90})
        else:
            out.append(heartbeat(f"ok-{i}", account=i, event_type="seek", player_state=None, seek_from_seconds=3.0,
                                 device_type="web"))
    return out


@dataclass(frozen=True)
class Bad:
    """One malformed line and the field its dead letter must name (None: no field, e.g. not JSON)."""

    line: bytes
    field: str | None


def malformed_corpus(originals: list[dict[str, Any]]) -> tuple[list[Bad], list[tuple[dict[str, Any], Bad]]]:
    """Malformed lines of every kind, and duplicates paired with the valid event they copy."""
    bad: list[Bad] = []

    def add(event: Any, field: str | None) -> None:
        bad.append(Bad(orjson.dumps(event), field))

    for i, text in enumerate([b"{broken", b"hello", b"[1, 2", b"{'quotes': 'single'}", b"nul\x00l", b"{]",
                              b'{"event_id": "x",}', b"\xff\xfe\xfa not utf-8", b"tru", b"--"]):
        bad.append(Bad(text + str(i).encode(), None))
    for value in [7, "a string", [1, 2], None, True, 3.5, [], "", 0]:
        add(value, None)
    add({"nested": [heartbeat("n")]}, "schema_version")
    wrong_types = [("position_seconds", "12"), ("bitrate_kbps", "high"), ("is_live", "yes"), ("event_id", 123),
                   ("account_id", 5), ("device_type", 7), ("player_state", ["playing"]),
                   ("event_timestamp", 1700000000), ("country", 44)]
    for i in range(27):
        field, value = wrong_types[i % len(wrong_types)]
        add({**heartbeat(f"wt-{i}"), field: value}, field)
    for i in range(3):
        add({"event_id": f"wt-click-{i}", "schema_version": 1, "event_type": "click", "event_timestamp": _ts(),
             "account_id": "acc-1", "user_id": "usr-1", "rail_id": "r", "button_id": "b", "slot": 1.5 + i}, "slot")
    required = ["event_id", "schema_version", "event_type", "event_timestamp", "account_id", "user_id",
                "device_type", "session_id", "content_id", "position_seconds", "player_state"]
    for i in range(33):
        field = required[i % len(required)]
        event = heartbeat(f"mf-{i}")
        del event[field]
        add(event, field)
    for i in range(20):
        add(heartbeat(f"ut-{i}", event_type=f"teleport_{i}"), "event_type")
        add(heartbeat(f"sv-{i}", schema_version=2 + i), "schema_version")
        add(heartbeat(f"np-{i}", position_seconds=-1.0 - i), "position_seconds")
        add(heartbeat(f"fu-{i}", event_timestamp=_ts(timedelta(days=2 + i))), "event_timestamp")
        add(heartbeat(f"pa-{i}", event_timestamp=_ts(-timedelta(days=365 * (1 + i % 5) + i))), "event_timestamp")
        add(heartbeat(f"os-{i}", app_version="v" * (65 + i)), "app_version")
        add(heartbeat(f"uf-{i}", **{f"extra_{i}": 1}), f"extra_{i}")
    dups = [(original, Bad(orjson.dumps({**original, "event_timestamp": _ts(timedelta(seconds=1))}), "event_id"))
            for original in originals[:20]]
    return bad, dups


def consume(settings: Settings, topics: list[str], expected: int, *, timeout_s: float = 20.0) -> list[Any]:
    """Every record of ``topics`` (reads until ``expected`` records arrived and the topics are idle)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(*topics, **settings.kafka_consumer_config(group_id=None, consumer_timeout_ms=2000))
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = list(consumer)
            records.extend(batch)
            if len(records) >= expected and not batch:
                break
    finally:
        consumer.close()
    return records


@pytest.fixture
def collector(kafka_service: Settings, isolated: Settings) -> Iterator[Settings]:
    """The collector as a background process on a free port, for the test's own topics."""
    from infra.kafka import ensure_topics
    from serving.collector.service import collector_healthy, start_collector, stop_collector

    ensure_topics(isolated)
    settings = isolated.model_copy(update={"collector_port": free_port(), "collector_max_body_bytes": 1024 * 1024,
                                           "collector_max_batch_events": 500})
    start_collector(settings)
    try:
        assert collector_healthy(settings)
        yield settings
    finally:
        stop_collector(settings)


def test_every_event_is_accounted_for(collector: Settings, spark, monkeypatch):
    from serving.collector.service import collector_url

    valid = valid_events(150)
    bad, dups = malformed_corpus(valid)
    assert len(bad) + len(dups) >= 200
    dup_of = {id(original): dup for original, dup in dups}
    groups: list[list[bytes]] = [[orjson.dumps(e)] + ([dup_of[id(e)].line] if id(e) in dup_of else []) for e in valid]
    groups += [[b.line] for b in bad]
    random.Random(7).shuffle(groups)
    expected_bad = bad + [dup for _, dup in dups]

    statuses: Counter[int] = Counter()
    answered = Counter[str]()
    with httpx.Client(base_url=collector_url(collector), timeout=30) as client:
        for n, start in enumerate(range(0, len(groups), 40)):
            lines = [line for group in groups[start:start + 40] for line in group]
            body = b"\n".join(lines) + b"\n"
            if n % 2:
                response = client.post("/v1/events", content=gzip.compress(body),
                                       headers={**NDJSON, "content-encoding": "gzip"})
            else:
                response = client.post("/v1/events", content=body, headers=NDJSON)
            statuses[response.status_code] += 1
            answer = response.json()
            assert answer["accepted"] + answer["rejected"] == len(lines) and answer["retry"] == 0
            answered.update({"accepted": answer["accepted"], "rejected": answer["rejected"]})
            for result in answer["results"]:
                assert result["status"] == "rejected" and result["reason"]
        # A JSON array works too (all valid, so nothing lands on the dead letters).
        extra = [heartbeat(f"arr-{i}", account=1000 + i) for i in range(10)]
        array = client.post("/v1/events", json=extra)
        assert array.status_code == 200 and array.json()["accepted"] == 10

        too_big = client.post("/v1/events", content=b"[" + b" " * (1024 * 1024 + 10) + b"]",
                              headers={"content-type": "application/json"})
        bomb = client.post("/v1/events", content=gzip.compress(b" " * (8 * 1024 * 1024)),
                           headers={**NDJSON, "content-encoding": "gzip"})
        too_many = client.post("/v1/events", json=[heartbeat(f"many-{i}") for i in range(501)])
        wrong_type = client.post("/v1/events", content=orjson.dumps(valid[:2]), headers={"content-type": "text/csv"})
        broken_gzip = client.post("/v1/events", content=b"not gzip", headers={**NDJSON, "content-encoding": "gzip"})
        empty = client.post("/v1/events", content=b"", headers=NDJSON)
        metrics = client.get("/metrics").text
    assert statuses == {200: statuses[200]}
    # /metrics counts what the answers said, event by event and request by request.
    assert f'reelytics_collector_events_total{{status="accepted"}} {len(valid) + len(extra)}.0' in metrics
    assert f'reelytics_collector_events_total{{status="rejected"}} {len(expected_bad)}.0' in metrics
    assert 'reelytics_collector_requests_refused_total{status="413"} 3.0' in metrics
    assert 'reelytics_collector_request_seconds_count{method="POST",route="/v1/events",status="200"}' in metrics
    assert (too_big.status_code, bomb.status_code, too_many.status_code) == (413, 413, 413)
    assert too_big.json()["limit_bytes"] == 1024 * 1024 and too_many.json()["limit_events"] == 500
    assert wrong_type.status_code == 415 and (broken_gzip.status_code, empty.status_code) == (400, 400)
    assert answered == {"accepted": len(valid), "rejected": len(expected_bad)}

    topics = collector.topics
    records = consume(collector, topics.names(), len(valid) + len(extra) + len(expected_bad))
    by_topic: dict[str, list[Any]] = {}
    for record in records:
        by_topic.setdefault(record.topic, []).append(record)

    events = [(r.topic, r.key, orjson.loads(r.value)) for t, rs in by_topic.items() if t != topics.dead_letter.name
              for r in rs]
    seen = Counter(event["event_id"] for _, _, event in events)
    assert seen == Counter({e["event_id"]: 1 for e in valid + extra})
    want_topic = {e["event_id"]: (collector.topics.for_kind(_kind(e)).name, kafka_key(e)) for e in valid + extra}
    assert all(want_topic[event["event_id"]] == (topic, key) for topic, key, event in events)

    letters = [orjson.loads(r.value) for r in by_topic.get(topics.dead_letter.name, [])]
    assert len(letters) == len(expected_bad)
    by_raw = Counter((letter["raw_payload"], letter["raw_encoding"]) for letter in letters)
    for entry in expected_bad:
        try:
            key = (entry.line.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            key = (base64.b64encode(entry.line).decode(), "base64")
        assert by_raw[key] >= 1, f"no dead letter for {entry.line[:80]!r}"
    for letter in letters:
        assert letter["stage"] == "collector" and letter["source"].startswith("http:") and letter["received_at"]
    fields = Counter(letter["field"] for letter in letters)
    assert fields == Counter(entry.field for entry in expected_bad)
    for letter in letters:
        if letter["field"] is not None:
            assert letter["reason"].startswith(letter["field"] + ":")

    # Bronze lands the same dead letters in the dead-letter Delta table, reason and raw payload intact...
    _assert_dead_letter_table(collector, spark, letters)
    # ...and `reelytics dlq` reports them from the table and from the topic.
    _assert_dlq_reports(collector, monkeypatch, letters)


def _assert_dead_letter_table(settings: Settings, spark: Any, letters: list[dict[str, Any]]) -> None:
    from deltalake import DeltaTable

    from batch_layer.bronze.job import run_bronze_available_now
    from warehouse_models.tables import DEAD_LETTER

    added = run_bronze_available_now(settings, spark, timeout_s=300)
    assert added[DEAD_LETTER.name] == len(letters)
    rows = DeltaTable(DEAD_LETTER.path(settings.delta_root_uri)).to_pyarrow_table().to_pylist()
    in_table = Counter((row["dead_letter_id"], row["field"], row["reason"], row["raw_payload"]) for row in rows)
    assert in_table == Counter((letter["dead_letter_id"], letter["field"], letter["reason"], letter["raw_payload"])
                               for letter in letters)


def _assert_dlq_reports(settings: Settings, monkeypatch: pytest.MonkeyPatch, letters: list[dict[str, Any]]) -> None:
    from typer.testing import CliRunner

    from reelytics.cli import app
    from warehouse_models.settings import settings_environment

    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    fields = Counter(letter["field"] or "-" for letter in letters)
    for source in ("table", "topic"):
        result = CliRunner().invoke(app, ["dlq", source, "--limit", "3"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert f"{len(letters):,} dead letters in" in result.output
        assert "newest 3" in result.output
        for field in fields:
            assert field in result.output, f"no line for {field} in `reelytics dlq {source}`"


def _kind(event: dict[str, Any]) -> Any:
    from warehouse_models.events import topic_kind

    return topic_kind(event)


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker only this test uses (own ports and data dir), so stopping it disturbs nobody else."""
    from infra import kafka

    settings = Settings(data_dir=tmp_path_factory.mktemp("kafka-fault"),
                        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", kafka_controller_port=free_port(),
                        kafka_topic_prefix="fault", kafka_partitions=3, collector_port=free_port())
    kafka.start(settings)
    try:
        yield settings
    finally:
        kafka.stop(settings)


def test_a_kafka_outage_loses_nothing_that_was_acknowledged(own_broker: Settings):
    from infra import kafka
    from serving.collector.service import collector_url, start_collector, stop_collector

    settings = own_broker
    outcomes: dict[str, str] = {}
    codes: Counter[int] = Counter()
    failures: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def post_forever() -> None:
        n = 0
        try:
            with httpx.Client(base_url=collector_url(settings), timeout=60) as client:
                while not stop.is_set():
                    batch = [heartbeat(f"f-{n + i}", account=(n + i) % 37) for i in range(25)]
                    n += len(batch)
                    response = client.post("/v1/events", json=batch)
                    answer = response.json()
                    status = {batch[r["index"]]["event_id"]: r["status"] for r in answer["results"]}
                    with lock:
                        codes[response.status_code] += 1
                        for event in batch:
                            outcomes[event["event_id"]] = status.get(event["event_id"], "accepted")
                    if response.status_code == 503:
                        assert response.headers["retry-after"].isdigit()
                        assert set(status.values()) == {"retry"} and answer["retry"] == len(status) >= 1
                        assert answer["accepted"] + answer["retry"] == len(batch)
                    else:
                        assert response.status_code == 200 and answer["accepted"] == len(batch)
                    time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    start_collector(settings)
    client = threading.Thread(target=post_forever, daemon=True)
    try:
        client.start()
        _wait(lambda: codes[200] >= 5, 20, "acknowledged requests before the outage")
        assert kafka.stop(settings), "the test's own broker was not running"
        down_at = time.monotonic()
        _wait(lambda: codes[503] >= 1, 40, "a 503 while Kafka is down")
        kafka.start(settings)
        ok_before = codes[200]
        _wait(lambda: codes[200] >= ok_before + 3, 40, "acknowledged requests after the restart")
        stop.set()
        client.join(timeout=70)
        assert not failures, failures
        assert time.monotonic() - down_at < 80
    finally:
        stop.set()
        stop_collector(settings)
        if not kafka.healthy(settings):
            kafka.start(settings)
    assert kafka.healthy(settings)

    accepted = {eid for eid, status in outcomes.items() if status == "accepted"}
    assert set(outcomes.values()) <= {"accepted", "retry"}
    assert codes[503] >= 1 and codes[200] >= 8 and set(codes) <= {200, 503}
    records = consume(settings, [settings.topics.playback.name], len(accepted))
    in_kafka = Counter(orjson.loads(r.value)["event_id"] for r in records)
    assert {eid: in_kafka[eid] for eid in accepted} == {eid: 1 for eid in accepted}
    # What Kafka holds beyond the accepted events can only be events answered "retry" (written, but acknowledged
    # too late): the client was told to resend them, and event_id makes the resend harmless downstream.
    assert set(in_kafka) - accepted <= {eid for eid, status in outcomes.items() if status == "retry"}
    assert all(n == 1 for n in in_kafka.values())


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_the_simulator_feeds_the_collector(collector: Settings):
    from infra.kafka import topic_record_counts
    from simulator import SimulationConfig, ground_truth, simulate
    from simulator.sinks import write_collector

    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=5)
    config = SimulationConfig(start=start, duration=timedelta(minutes=5), users=60, seed=11)
    events = list(simulate(config))
    truth = ground_truth(events, config=config)

    assert write_collector(events, collector, batch_size=200) == {"accepted": len(events), "rejected": 0}
    expected = {collector.topics.for_kind(kind).name: n for kind, n in truth["events_per_topic"].items()}
    assert {name: n for name, n in topic_record_counts(collector).items() if n} == expected

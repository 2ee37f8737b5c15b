"""Bronze against real Kafka, Spark and Delta: every Kafka record lands in bronze exactly once.

Contract: after an available-now run each bronze table holds one row per record of its topic, counted
against the simulator's ground truth plus the records added by hand; refused records are kept with a
``parse_error`` naming the field; (topic, partition, offset) is unique; a second run adds nothing; and a job
killed with SIGKILL while data is arriving, then restarted from its checkpoint, neither loses nor repeats one.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from batch_layer.bronze.job import run_bronze_available_now
from simulator import SimulationConfig, ground_truth, simulate
from simulator.sinks import write_kafka
from warehouse_models.dead_letter import dead_letter_record
from warehouse_models.events import PLAYBACK_TYPES
from warehouse_models.settings import Settings
from warehouse_models.tables import BRONZE_PLAYBACK, BRONZE_TABLES, DEAD_LETTER, TableSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
_PLAYBACK_TYPES = {t.value for t in PLAYBACK_TYPES}

BAD_PLAYBACK: list[tuple[bytes, str | None]] = [
    (b'{"event_id": "bad-1", "schema_version": 1,', None),  # cut short: no field to blame
    (json.dumps({"event_id": "bad-2", "schema_version": 1, "event_type": "heartbeat",
                 "event_timestamp": "2026-01-05T20:00:00.000Z", "account_id": "a", "user_id": "u",
                 "device_type": "toaster"}).encode(), "device_type"),
    (json.dumps({"event_id": "bad-3", "schema_version": 1, "event_type": "seek", "mood": "happy"}).encode(), "mood"),
    (json.dumps({"event_id": "bad-4", "schema_version": 7, "event_type": "seek"}).encode(), "schema_version"),
]


def _settings(isolated: Settings, tmp_path: Path) -> Settings:
    """The test's settings with its own checkpoint root (checkpoints are per table name, not per topic)."""
    return isolated.model_copy(update={"checkpoint_root": str(tmp_path / "checkpoints")})


def _recent_world(users: int) -> tuple[SimulationConfig, list[dict]]:
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=6)
    config = SimulationConfig(start=start, duration=timedelta(minutes=5), users=users)
    return config, list(simulate(config))


def _produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka_producer_config())
    try:
        for value in values:
            producer.send(topic, value=value, key=b"k")
        producer.flush()
    finally:
        producer.close()


def _table(settings: Settings, spec: TableSpec):
    import pyarrow as pa
    from deltalake import DeltaTable

    arrow = DeltaTable(spec.path(settings.delta_root_uri)).to_pyarrow_table()
    return arrow if isinstance(arrow, pa.Table) else pa.table(arrow)


def _assert_each_record_once(settings: Settings) -> dict[str, int]:
    """Every bronze table holds exactly the (partition, offset) pairs its topic holds; returns row counts."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_consumer_config())
    counts: dict[str, int] = {}
    try:
        for spec in BRONZE_TABLES:
            assert spec.source_topic is not None
            topic = settings.topics.for_kind(spec.source_topic).name
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            begin, end = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
            expected = sorted((tp.partition, o) for tp in partitions for o in range(begin[tp], end[tp]))
            table = _table(settings, spec)
            seen = sorted(zip(table.column("kafka_partition").to_pylist(), table.column("kafka_offset").to_pylist(),
                              strict=True))
            assert set(table.column("kafka_topic").to_pylist()) <= {topic}
            assert len(seen) == len(set(seen)), f"{spec.name}: a record is in bronze twice"
            assert seen == expected, f"{spec.name}: bronze and Kafka differ ({len(seen)} vs {len(expected)} records)"
            counts[spec.name] = len(seen)
    finally:
        consumer.close()
    return counts


def test_available_now_lands_every_record_once_with_its_verdict(kafka_service, isolated, spark, tmp_path):
    from deltalake import DeltaTable

    from infra.kafka import ensure_topics

    settings = _settings(isolated, tmp_path)
    ensure_topics(settings)
    config, events = _recent_world(users=100)
    truth = ground_truth(events, config=config)
    write_kafka(events, settings)
    _produce(settings, settings.topics.playback.name, [raw for raw, _ in BAD_PLAYBACK])
    letters = [
        dead_letter_record(raw, f"{field}: refused" if field else "not valid JSON", field=field, stage="collector",
                           source="127.0.0.1")
        for raw, field in BAD_PLAYBACK
    ]
    _produce(settings, settings.topics.dead_letter.name, [json.dumps(d).encode() for d in letters] + [b"garbage"])

    added = run_bronze_available_now(settings, spark, timeout_s=300)

    per_topic = truth["events_per_topic"]
    expected = {spec.name: per_topic.get(spec.source_topic.value, 0) for spec in BRONZE_TABLES if spec.source_topic}
    expected[BRONZE_PLAYBACK.name] += len(BAD_PLAYBACK)
    expected[DEAD_LETTER.name] = len(letters) + 1
    assert added == expected
    assert _assert_each_record_once(settings) == expected

    playback = _table(settings, BRONZE_PLAYBACK).to_pylist()
    refused = {row["raw_value"]: row["parse_error"] for row in playback if row["parse_error"] is not None}
    assert set(refused) == {raw.decode() for raw, _ in BAD_PLAYBACK}
    for raw, field in BAD_PLAYBACK:
        reason = refused[raw.decode()]
        assert reason.startswith(f"{field}:") if field else reason.startswith("not valid JSON"), reason
    accepted = [row for row in playback if row["parse_error"] is None]
    assert all(row["event_id"] and row["event_timestamp"] and row["event_type"] for row in accepted)
    for spec in BRONZE_TABLES[1:4]:
        assert all(row["parse_error"] is None for row in _table(settings, spec).to_pylist()), spec.name

    dead = {row["dead_letter_id"]: row for row in _table(settings, DEAD_LETTER).to_pylist()}
    for letter in letters:
        assert dead[letter["dead_letter_id"]]["reason"] == letter["reason"]
        assert dead[letter["dead_letter_id"]]["raw_payload"] == letter["raw_payload"]
    assert sum(row["stage"] == "unknown" for row in dead.values()) == 1

    # One schema for every reader: the declared names, order and types, partitioned by ingest date.
    for spec in BRONZE_TABLES:
        table = DeltaTable(spec.path(settings.delta_root_uri))
        schema = _table(settings, spec).schema
        assert schema.names == spec.column_names
        assert [f.type for f in schema] == [f.type for f in spec.arrow_schema()], spec.name
        assert table.metadata().partition_columns == ["ingest_date"]

    again = run_bronze_available_now(settings, spark, timeout_s=300)
    assert again == {name: 0 for name in expected}
    assert _assert_each_record_once(settings) == expected


def test_job_killed_mid_stream_restarts_from_its_checkpoint_without_loss_or_duplicates(
    kafka_service, isolated, spark, tmp_path
):
    from deltalake import DeltaTable

    from infra.kafka import ensure_topics
    from infra.process import ManagedProcess, wait_until

    settings = _settings(isolated, tmp_path)
    ensure_topics(settings)
    _, events = _recent_world(users=250)
    env = {
        "REELYTICS_DATA_DIR": str(settings.data_dir),
        "REELYTICS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REELYTICS_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "REELYTICS_KAFKA_PARTITIONS": str(settings.kafka_partitions),
        "REELYTICS_DELTA_ROOT": settings.delta_root_uri,
        "REELYTICS_CHECKPOINT_ROOT": settings.checkpoint_root_uri,
        "REELYTICS_LOG_LEVEL": "INFO",
    }
    job = ManagedProcess("bronze-under-test", tmp_path / "run")
    playback_path = BRONZE_PLAYBACK.path(settings.delta_root_uri)
    killed = threading.Event()

    def arriving() -> Iterator[dict]:
        # A trickle until the job is killed, then the rest at once: data is still arriving at the kill.
        for event in events:
            if not killed.is_set():
                time.sleep(1 / 25)
            yield event

    producer = threading.Thread(target=write_kafka, args=(arriving(), settings), daemon=True)
    job.start([sys.executable, "-m", "batch_layer.bronze", "--mode", "continuous", "--processing-time", "1 second"],
              env=env, cwd=REPO_ROOT)
    try:
        wait_until(lambda: DeltaTable.is_deltatable(playback_path), timeout=300, what="bronze tables",
                   alive=job.running, log_path=job.log_path)
        producer.start()

        def first_rows_committed() -> bool:
            return len(DeltaTable(playback_path).to_pyarrow_table(columns=["kafka_offset"])) > 0

        wait_until(first_rows_committed, timeout=300, what="the first bronze commit", alive=job.running,
                   log_path=job.log_path)
        assert producer.is_alive(), "the job must be killed while data is still arriving"
        job.kill()
    finally:
        job.kill()
        killed.set()
    producer.join(timeout=120)
    assert not producer.is_alive()
    assert "Traceback" not in job.log_path.read_text(errors="replace")
    partial = len(DeltaTable(playback_path).to_pyarrow_table(columns=["kafka_offset"]))
    assert 0 < partial < sum(1 for e in events if e["event_type"] in _PLAYBACK_TYPES)

    run_bronze_available_now(settings, spark, timeout_s=300)
    counts = _assert_each_record_once(settings)
    assert counts[BRONZE_PLAYBACK.name] == sum(1 for e in events if e["event_type"] in _PLAYBACK_TYPES)
    assert sum(counts.values()) == len(events)
    assert os.path.isdir(Path(settings.checkpoint_root_uri) / "bronze" / BRONZE_PLAYBACK.name / "commits")

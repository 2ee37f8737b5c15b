"""Spark reads a real Kafka topic and writes a Delta table that deltalake and DuckDB read back."""

from __future__ import annotations

from tests.integration.test_services import _events
from warehouse_models.events import ENVELOPE_COLUMNS, encode, kafka_key
from warehouse_models.types import spark_ddl


def _available_now(stream, path: str, checkpoint: str) -> None:
    """Write everything the stream can read now to the Delta table at `path`, then stop."""
    query = stream.writeStream.format("delta").option("checkpointLocation", checkpoint) \
        .trigger(availableNow=True).start(path)
    try:
        query.awaitTermination(180)
    finally:
        query.stop()


def test_kafka_topic_to_delta_and_back(kafka_service, isolated, spark, tmp_path):
    import duckdb
    from deltalake import DeltaTable
    from kafka import KafkaProducer
    from pyspark.sql import functions as F

    from infra.kafka import ensure_topics

    ensure_topics(isolated)
    topic = isolated.topics.playback.name
    events = _events(250)
    producer = KafkaProducer(**isolated.kafka_producer_config())
    for e in events:
        producer.send(topic, key=kafka_key(e), value=encode(e))
    producer.flush()
    producer.close()

    path = str(tmp_path / "delta" / "bronze_playback")
    stream = (
        spark.readStream.format("kafka")
        .options(**isolated.spark_kafka_options())
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
        .select(
            "topic", "partition", "offset",
            F.col("value").cast("string").alias("raw_value"),
            F.from_json(F.col("value").cast("string"), spark_ddl(ENVELOPE_COLUMNS)).alias("e"),
        )
        .select("topic", "partition", "offset", "raw_value", "e.*")
    )
    _available_now(stream, path, str(tmp_path / "checkpoint"))

    table = DeltaTable(path)
    arrow = table.to_pyarrow_table()
    assert arrow.num_rows == len(events)
    assert sorted(arrow.column("event_id").to_pylist()) == sorted(e["event_id"] for e in events)
    assert table.history()[0]["operation"] == "STREAMING UPDATE"

    con = duckdb.connect()
    con.register("bronze", arrow)
    rows = con.execute(
        "select count(distinct account_id), sum(position_seconds), min(event_timestamp) is not null from bronze"
    ).fetchone()
    assert rows == (7, float(sum(e["position_seconds"] for e in events)), True)

    # The same checkpoint run again reads nothing new: no record is written twice.
    _available_now(stream, path, str(tmp_path / "checkpoint"))
    assert DeltaTable(path).to_pyarrow_table().num_rows == len(events)

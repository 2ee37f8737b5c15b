"""Topics, tables, Redis keys and settings are declared once and consistent with each other."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest
from pydantic import ValidationError

from warehouse_models.dead_letter import dead_letter_record
from warehouse_models.events import ENVELOPE_COLUMNS, TopicKind
from warehouse_models.redis_keys import KeyLayout, bucket_start
from warehouse_models.settings import Settings
from warehouse_models.tables import ALL_TABLES, DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, TABLES_BY_NAME
from warehouse_models.topics import Topics


def test_topics_are_prefixed_and_cover_every_kind():
    topics = Topics("x", partitions=4)
    assert {t.kind for t in topics.all()} == set(TopicKind)
    assert all(t.name.startswith("x.") for t in topics.all())
    assert topics.playback.partitions == 4 and topics.catalog.config["cleanup.policy"] == "compact"


def test_client_model_columns_are_present():
    assert {"event_id", "user_id", "content_id", "event_timestamp", "event_type", "position_seconds",
            "quality_level", "device_type", "network_quality", "session_id", "created_at"} <= set(
        FACT_STREAM_EVENTS.column_names)
    assert FACT_STREAM_EVENTS.partition_by == ("event_date",)
    assert {"content_id", "content_title", "content_type", "genre_primary", "genre_secondary", "release_date",
            "duration_minutes", "language", "age_rating", "cast_members", "director"} <= set(DIM_CONTENT.column_names)
    assert {"user_id", "user_name", "age_group", "location_country", "subscription_type", "join_date",
            "preferences"} <= set(DIM_USERS.column_names)


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_every_table_renders_to_arrow_and_spark_ddl(table):
    schema = table.arrow_schema()
    assert isinstance(schema, pa.Schema) and schema.names == table.column_names
    assert len(set(table.column_names)) == len(table.column_names)
    assert table.spark_ddl().count("`") == 2 * len(table.columns)
    assert table.path("s3a://bucket/lake/") == f"s3a://bucket/lake/{table.layer}/{table.name}"


def test_bronze_tables_keep_the_whole_envelope():
    for name in ("bronze_playback", "bronze_interactions", "bronze_catalog", "bronze_derived"):
        assert set(c.name for c in ENVELOPE_COLUMNS) <= set(TABLES_BY_NAME[name].column_names)
        assert {"kafka_topic", "kafka_partition", "kafka_offset", "raw_value"} <= set(TABLES_BY_NAME[name].column_names)


def test_key_builders_are_prefixed_and_bucketed():
    keys = KeyLayout("p")
    ts = datetime(2026, 1, 1, 0, 1, 59, tzinfo=timezone.utc)
    b = bucket_start(ts)
    assert b == int(datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc).timestamp())
    assert keys.user_engagement_bucket("u1", b) == f"p:speed:user:u1:b:{b}"
    assert keys.trending("live") == "p:speed:trending:live:all"
    assert keys.trending("live", "DE") == "p:speed:trending:live:c:DE"
    assert keys.trending_viewers("vod", "c:DE:x") != keys.trending_viewers("vod", "x", "DE")
    assert keys.batch_user_totals("v3", "u1").startswith("p:batch:v3:")
    assert keys.pattern("speed") == "p:speed:*"


def test_settings_read_the_prefixed_environment(monkeypatch):
    monkeypatch.setenv("REELYTICS_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("REELYTICS_SPARK_MASTER", "spark://m:7077")
    monkeypatch.setenv("REELYTICS_REDIS_PASSWORD", "s3cret")
    settings = Settings()
    assert settings.kafka_bootstrap_list == ["k1:9092", "k2:9092"]
    assert settings.spark_master == "spark://m:7077"
    assert "s3cret" not in repr(settings)
    assert settings.kafka_producer_config()["acks"] == "all"


def test_settings_refuse_unknown_and_bad_values():
    with pytest.raises(ValidationError):
        Settings(kafka_bootstrap="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(redis_url="http://nope")
    with pytest.raises(ValidationError):
        Settings(kafka_topic_prefix="a b")


def test_dead_letter_keeps_raw_bytes_that_are_not_utf8():
    record = dead_letter_record(b"\xff\x00bad", "not valid JSON", field=None, stage="collector", source="1.2.3.4")
    assert record["raw_encoding"] == "base64" and record["raw_payload"] == "/wBiYWQ="
    record = dead_letter_record('{"event_id": "e9", "event_type": "x"}', "event_type: unknown",
                                field="event_type", stage="collector", source="t/0/5")
    assert (record["event_id"], record["event_type"], record["raw_encoding"]) == ("e9", "x", "utf-8")

"""The Dagster definitions load, and an asset materializes against the real Kafka broker."""

from __future__ import annotations


def test_definitions_load():
    from orchestration.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "kafka_topics" in keys


def test_kafka_topics_asset_materializes(kafka_service, isolated, monkeypatch, tmp_path):
    from dagster import DagsterInstance, materialize

    from orchestration.defs.ingest.assets import kafka_topics
    from orchestration.resources import ReelyticsSettingsResource

    monkeypatch.setenv("REELYTICS_KAFKA_TOPIC_PREFIX", isolated.kafka_topic_prefix)
    monkeypatch.setenv("REELYTICS_KAFKA_BOOTSTRAP_SERVERS", isolated.kafka_bootstrap_servers)
    monkeypatch.setenv("REELYTICS_KAFKA_PARTITIONS", "2")
    with DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        result = materialize([kafka_topics], resources={"settings": ReelyticsSettingsResource()}, instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("kafka_topics")[0].metadata
    assert metadata["created"].value == 5
    partitions = metadata["partitions"].data
    assert partitions[f"{isolated.kafka_topic_prefix}.playback"] == 2
    assert partitions[f"{isolated.kafka_topic_prefix}.catalog"] == 1

"""Ingest assets."""

# No `from __future__ import annotations` here: Dagster reads the annotations of the context parameter.

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.resources import ReelyticsSettingsResource


@asset(group_name="ingest", kinds={"kafka"})
def kafka_topics(context: AssetExecutionContext, settings: ReelyticsSettingsResource) -> MaterializeResult:
    """The Kafka topics of `warehouse_models.topics`, created when missing, with their partitions."""
    from kafka import KafkaAdminClient

    from infra.kafka import ensure_topics

    s = settings.get()
    created = ensure_topics(s)
    context.log.info("created topics: %s", ", ".join(created) or "none (all existed)")
    admin = KafkaAdminClient(**s.kafka_admin_config())
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(s.topics.names())}
    finally:
        admin.close()
    return MaterializeResult(
        metadata={
            "created": MetadataValue.int(len(created)),
            "partitions": MetadataValue.json(described),
            "bootstrap_servers": MetadataValue.text(s.kafka_bootstrap_servers),
        }
    )

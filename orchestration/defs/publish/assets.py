"""Publish assets: the batch views in Redis as of W (hourly), and the reconciliation of speed and batch."""

# No `from __future__ import annotations` here: Dagster reads the annotations of the context parameter.

import time
from datetime import datetime, timedelta, timezone

from dagster import AssetExecutionContext, AssetKey, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from orchestration.defs.publish.checks import (
    RECONCILIATION_DRIFT,
    blocking_check_failures,
    reconciliation_drift_result,
)
from orchestration.defs.warehouse.assets import SPARK_RETRY, SPARK_TAGS
from orchestration.defs.warehouse.checks import BLOCKING_CHECKS
from orchestration.defs.warehouse.partitions import hourly_partitions
from orchestration.resources import ReelyticsSettingsResource, SparkResource
from warehouse_models.marts import MART_TABLES

GROUP = "publish"


def _batch_hours(context: AssetExecutionContext, published_watermark: int | None) -> list[datetime]:
    """The partition's hour and the newest hour already published: W never moves back when an older partition
    is re-run (the views are all-time totals, so the re-run hour is in them either way)."""
    hours = [context.partition_time_window.start]
    if published_watermark is not None:
        hours.append(datetime.fromtimestamp(published_watermark, tz=timezone.utc) - timedelta(hours=1))
    return hours


@asset(
    group_name=GROUP,
    kinds={"spark", "redis"},
    partitions_def=hourly_partitions,
    deps=[AssetKey("fact_stream_events"), *(AssetKey(spec.name) for spec in MART_TABLES)],
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
)
def batch_views_redis(context: AssetExecutionContext, settings: ReelyticsSettingsResource,
                      spark: SparkResource) -> MaterializeResult:
    """Per-user and per-title totals, CTR, QoE sums and trending baselines as of W (the end of the newest rebuilt
    closed hour), published to Redis as a new version behind one pointer swap; refused while the latest evaluation
    of a blocking quality check failed."""
    from batch_layer.publish.job import publish_batch_views
    from batch_layer.publish.versioned import PublishError, watermark_of
    from warehouse_models.batch_versions import current_version

    failures = blocking_check_failures(context.instance, BLOCKING_CHECKS)
    if failures:
        # Retrying cannot help: the data has to be fixed and checked again first.
        raise Failure(
            description=("publication refused, the latest evaluation of a blocking quality check failed:\n"
                         + "\n".join(f"- {failure}" for failure in failures)
                         + "\nFix the data the check names (its metadata lists the rows), re-run that asset's "
                           "partition with its checks, then run batch_views_redis again."),
            metadata={"failed_checks": MetadataValue.json(failures)},
            allow_retries=False,
        )
    s = settings.get()
    client = s.redis_client()
    current = current_version(client, s.keys)
    try:
        watermark = watermark_of(_batch_hours(context, current[1] if current else None),
                                 now=datetime.now(timezone.utc))
    except PublishError as error:
        raise Failure(description=str(error), allow_retries=False) from error
    started = time.monotonic()
    publication = publish_batch_views(
        spark.get(), s, watermark=watermark, client=client,
        on_chunk=lambda view, written: context.log.debug("%s: %d hashes written", view, written))
    seconds = round(time.monotonic() - started, 3)
    context.log.info("batch views as of %s published as %s (replacing %s): %s in %.1f s", watermark.isoformat(),
                     publication.version, publication.previous_version, publication.rows, seconds)
    return MaterializeResult(metadata={
        "watermark": MetadataValue.text(watermark.isoformat()),
        "watermark_epoch": MetadataValue.int(publication.watermark),
        "version": MetadataValue.text(publication.version),
        "previous_version": MetadataValue.text(publication.previous_version or "none"),
        "rows_per_view": MetadataValue.json(publication.rows),
        "rows": MetadataValue.int(sum(publication.rows.values())),
        "seconds": MetadataValue.float(seconds),
    })


class ReconciliationConfig(Config):
    """Run configuration of the ``reconciliation`` asset."""

    as_of: str | None = Field(default=None, description=(
        "Reconcile as if it were this UTC time (ISO 8601, e.g. 2026-12-01T15:10:00+00:00): which closed hours are "
        "settled and still inside the speed buckets' TTL is judged at it. Default: the time of the run."))

    def clock(self) -> datetime:
        if self.as_of is None:
            return datetime.now(timezone.utc)
        at = datetime.fromisoformat(self.as_of)
        if at.tzinfo is None:
            raise Failure(f"as_of {self.as_of!r} has no time zone; give it in UTC, e.g. {self.as_of}+00:00")
        return at.astimezone(timezone.utc)


@asset(
    group_name=GROUP,
    kinds={"spark", "redis", "delta"},
    partitions_def=hourly_partitions,
    deps=[AssetKey("fact_stream_events")],
    check_specs=[RECONCILIATION_DRIFT],
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
)
def reconciliation(context: AssetExecutionContext, config: ReconciliationConfig, settings: ReelyticsSettingsResource,
                   spark: SparkResource) -> MaterializeResult:
    """Speed buckets against the batch result for every settled closed hour still in the buckets' TTL (whatever
    the partition: it records when the comparison ran), one row per hour and view metric, and the drift check."""
    from batch_layer.reconcile.job import reconcile

    s = settings.get()
    started = time.monotonic()
    rows = reconcile(spark.get(), s, now=config.clock())
    seconds = round(time.monotonic() - started, 3)
    hours = sorted({r["hour"].isoformat() for r in rows})
    context.log.info("reconciled %d hours (%s): %d rows in %.1f s", len(hours), hours, len(rows), seconds)
    return MaterializeResult(
        metadata={
            "hours_reconciled": MetadataValue.json(hours),
            "rows": MetadataValue.int(len(rows)),
            "max_relative_drift": MetadataValue.float(max((r["relative_drift"] for r in rows), default=0.0)),
            "seconds": MetadataValue.float(seconds),
        },
        check_results=[reconciliation_drift_result(rows, s.reconcile_max_relative_drift)],
    )


PUBLISH_ASSETS = [batch_views_redis, reconciliation]

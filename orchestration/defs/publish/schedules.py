"""Publish schedule: the batch views and the reconciliation after the warehouse's hourly run (UTC)."""

from __future__ import annotations

from dagster import build_schedule_from_partitioned_job, define_asset_job

from orchestration.defs.publish.assets import PUBLISH_ASSETS
from orchestration.defs.warehouse.assets import SPARK_TAGS
from orchestration.defs.warehouse.partitions import hourly_partitions

publish_job = define_asset_job(
    "publish_hourly", selection=PUBLISH_ASSETS, partitions_def=hourly_partitions, tags=SPARK_TAGS,
    description="Batch views to Redis as of the hour that closed, then speed vs batch for the settled hours.",
)

publish_schedule = build_schedule_from_partitioned_job(publish_job, minute_of_hour=25, name="publish_hourly_schedule")
"""At HH:25 UTC, after the warehouse's HH:07 run of the same hour (cron ``25 * * * *``)."""

PUBLISH_JOBS = [publish_job]
PUBLISH_SCHEDULES = [publish_schedule]

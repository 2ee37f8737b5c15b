"""Warehouse schedules: the hourly assets a few minutes past each hour, the daily ones at night (UTC)."""

from __future__ import annotations

from dagster import build_schedule_from_partitioned_job, define_asset_job

from orchestration.defs.warehouse.assets import DAILY_ASSETS, HOURLY_ASSETS, SPARK_TAGS, silver_events
from orchestration.defs.warehouse.partitions import daily_partitions, hourly_partitions

hourly_job = define_asset_job(
    "warehouse_hourly", selection=HOURLY_ASSETS, partitions_def=hourly_partitions, tags=SPARK_TAGS,
    description="Bronze from Kafka, then the hour's silver events and its date's facts.",
)
daily_job = define_asset_job(
    "warehouse_daily", selection=DAILY_ASSETS, partitions_def=daily_partitions, tags=SPARK_TAGS,
    description="The dimensions and the marts of one date.",
)
silver_job = define_asset_job(
    "silver_hours", selection=[silver_events], partitions_def=hourly_partitions, tags=SPARK_TAGS,
    description="One silver event hour, rebuilt (what the bronze sensor asks for).",
)

hourly_schedule = build_schedule_from_partitioned_job(hourly_job, minute_of_hour=7, name="warehouse_hourly_schedule")
"""At HH:07 UTC: the hour that just closed (cron ``7 * * * *``)."""

daily_schedule = build_schedule_from_partitioned_job(daily_job, hour_of_day=2, minute_of_hour=30,
                                                     name="warehouse_daily_schedule")
"""At 02:30 UTC: the date that just closed (cron ``30 2 * * *``)."""

WAREHOUSE_JOBS = [hourly_job, daily_job, silver_job]
WAREHOUSE_SCHEDULES = [hourly_schedule, daily_schedule]

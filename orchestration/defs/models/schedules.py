"""Models schedule: the recommendation model once a day, after the warehouse's nightly run (UTC)."""

from __future__ import annotations

from dagster import build_schedule_from_partitioned_job, define_asset_job

from orchestration.defs.models.assets import MODELS_ASSETS
from orchestration.defs.warehouse.assets import SPARK_TAGS
from orchestration.defs.warehouse.partitions import daily_partitions

models_job = define_asset_job(
    "models_daily", selection=MODELS_ASSETS, partitions_def=daily_partitions, tags=SPARK_TAGS,
    description="Train, evaluate and publish the recommendation model on the days ending with the date.",
)

models_schedule = build_schedule_from_partitioned_job(models_job, hour_of_day=3, minute_of_hour=30,
                                                      name="models_daily_schedule")
"""At 03:30 UTC, an hour after the warehouse's 02:30 run of the same date (cron ``30 3 * * *``)."""

MODELS_JOBS = [models_job]
MODELS_SCHEDULES = [models_schedule]

"""The root Dagster definitions: every domain's assets, schedules, sensors and checks, merged."""

from __future__ import annotations

from dagster import Definitions

from orchestration.defs.ingest.assets import kafka_topics
from orchestration.defs.models.assets import MODELS_ASSETS
from orchestration.defs.models.schedules import MODELS_JOBS, MODELS_SCHEDULES
from orchestration.defs.publish.assets import PUBLISH_ASSETS
from orchestration.defs.publish.schedules import PUBLISH_JOBS, PUBLISH_SCHEDULES
from orchestration.defs.warehouse.assets import WAREHOUSE_ASSETS
from orchestration.defs.warehouse.checks import WAREHOUSE_CHECKS
from orchestration.defs.warehouse.maintenance import MAINTENANCE_ASSETS, MAINTENANCE_JOBS, MAINTENANCE_SCHEDULES
from orchestration.defs.warehouse.schedules import WAREHOUSE_JOBS, WAREHOUSE_SCHEDULES
from orchestration.defs.warehouse.sensors import bronze_playback_sensor
from orchestration.resources import ReelyticsSettingsResource, SparkResource

defs = Definitions(
    assets=[kafka_topics, *WAREHOUSE_ASSETS, *MAINTENANCE_ASSETS, *PUBLISH_ASSETS, *MODELS_ASSETS],
    asset_checks=WAREHOUSE_CHECKS,
    jobs=[*WAREHOUSE_JOBS, *MAINTENANCE_JOBS, *PUBLISH_JOBS, *MODELS_JOBS],
    schedules=[*WAREHOUSE_SCHEDULES, *MAINTENANCE_SCHEDULES, *PUBLISH_SCHEDULES, *MODELS_SCHEDULES],
    sensors=[bronze_playback_sensor],
    resources={"settings": ReelyticsSettingsResource(), "spark": SparkResource()},
)

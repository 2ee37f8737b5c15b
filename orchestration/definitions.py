"""The root Dagster definitions: every domain's assets, schedules, sensors and checks, merged."""

from __future__ import annotations

from dagster import Definitions

from orchestration.defs.ingest.assets import kafka_topics
from orchestration.resources import ReelyticsSettingsResource

defs = Definitions(
    assets=[kafka_topics],
    resources={"settings": ReelyticsSettingsResource()},
)

"""Dagster resources: thin wrappers that hand out clients built from the one settings object.

Each field defaults to the environment-driven settings; secrets come as `EnvVar` so the UI never shows them.
"""

from __future__ import annotations

from dagster import ConfigurableResource

from warehouse_models.settings import Settings, load_settings


class ReelyticsSettingsResource(ConfigurableResource):
    """Gives assets the Reelytics settings, read from ``REELYTICS_*`` when a run starts (not at import)."""

    def get(self) -> Settings:
        return load_settings()

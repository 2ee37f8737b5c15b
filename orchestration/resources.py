"""Dagster resources: thin wrappers that hand out clients built from the one settings object.

Each field defaults to the environment-driven settings; secrets come as `EnvVar` so the UI never shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from warehouse_models.settings import Settings, load_settings

if TYPE_CHECKING:
    from dagster import InitResourceContext
    from pyspark.sql import SparkSession


class ReelyticsSettingsResource(ConfigurableResource):
    """Gives assets the Reelytics settings, read from ``REELYTICS_*`` when a run starts (not at import)."""

    def get(self) -> Settings:
        return load_settings()


class SparkResource(ConfigurableResource):
    """A SparkSession built lazily from the settings once per run process and stopped when the run's step ends."""

    app_name: str = "reelytics-dagster"
    ui: bool = False

    _spark: Any = PrivateAttr(default=None)
    _owned: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Start with no session: the first asset that asks for one builds it."""
        self._spark = None
        self._owned = False

    def get(self) -> SparkSession:
        """The run's SparkSession, built on first use from the ``REELYTICS_*`` settings."""
        if self._spark is None:
            from pyspark.sql import SparkSession

            from infra.spark import build_spark_session

            self._owned = SparkSession.getActiveSession() is None
            self._spark = build_spark_session(load_settings(), app_name=self.app_name, ui=self.ui)
        return self._spark

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Stop the session this resource built (one it found already running is left to its owner)."""
        if self._spark is not None and self._owned:
            self._spark.stop()
        self._spark = None
        self._owned = False

"""Warehouse sensors: rebuild the silver hours that new bronze playback data falls in."""

# No `from __future__ import annotations` here: Dagster reads the annotations of the context parameter.

from datetime import datetime, timezone

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from orchestration.defs.warehouse.partitions import hour_key, hourly_partitions
from orchestration.defs.warehouse.schedules import silver_job
from orchestration.resources import ReelyticsSettingsResource
from warehouse_models.settings import Settings
from warehouse_models.tables import BRONZE_PLAYBACK


def new_event_hours(settings: Settings, *, since_version: int | None) -> tuple[int | None, set[datetime]]:
    """The bronze playback table's version and the UTC event hours of the rows added after ``since_version``.

    The new rows are those of the data files the current version has and ``since_version`` had not (bronze only
    appends), read with deltalake and pyarrow: no Spark in the sensor. ``(None, set())`` while the table is missing.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    path = BRONZE_PLAYBACK.path(settings.delta_root_uri)
    try:
        table = DeltaTable(path)
    except TableNotFoundError:
        return None, set()
    version = table.version()
    if since_version is not None and version <= since_version:
        return version, set()
    seen = set() if since_version is None else set(DeltaTable(path, version=since_version).file_uris())
    added = sorted(set(table.file_uris()) - seen)
    if not added:
        return version, set()
    column = ds.dataset(added, format="parquet").to_table(columns=["event_timestamp"]).column("event_timestamp")
    hours = set()
    for value in pc.unique(pc.floor_temporal(column.drop_null(), unit="hour")).to_pylist():
        hours.add(value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc))
    return version, hours


@sensor(job=silver_job, minimum_interval_seconds=120, default_status=DefaultSensorStatus.STOPPED)
def bronze_playback_sensor(context: SensorEvaluationContext, settings: ReelyticsSettingsResource) -> SensorResult:
    """Requests a silver run for every closed event hour that bronze playback rows landed in since the cursor.

    The cursor is the bronze playback table's Delta version; a late event re-opens its hour. The hour in progress
    is left to the hourly schedule, which builds it once it closes.
    """
    cursor = int(context.cursor) if context.cursor else None
    version, hours = new_event_hours(settings.get(), since_version=cursor)
    if version is None:
        return SensorResult(skip_reason=SkipReason("bronze playback table does not exist yet"))
    if version == cursor:
        return SensorResult(skip_reason=SkipReason(f"bronze playback still at version {version}"))
    valid = set(hourly_partitions.get_partition_keys())
    keys = sorted({hour_key(h) for h in hours} & valid)
    context.log.info("bronze playback version %s -> %s: %d event hours, %d to rebuild", cursor, version,
                     len(hours), len(keys))
    return SensorResult(
        run_requests=[RunRequest(run_key=f"{key}@v{version}", partition_key=key) for key in keys],
        cursor=str(version),
    )

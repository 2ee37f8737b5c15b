"""Warehouse maintenance: a daily asset that compacts (OPTIMIZE) and vacuums every declared Delta table."""

# No `from __future__ import annotations` here: Dagster reads the annotations of the context parameter.

from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from batch_layer.maintenance import TableMaintenance, maintain_tables, report_markdown, totals
from orchestration.defs.warehouse.assets import GROUP, SPARK_RETRY, SPARK_TAGS, WAREHOUSE_ASSETS
from orchestration.resources import ReelyticsSettingsResource, SparkResource


@asset(
    group_name=GROUP,
    kinds={"spark", "delta"},
    deps=[key for node in WAREHOUSE_ASSETS for key in node.keys],
    op_tags=SPARK_TAGS,
    retry_policy=SPARK_RETRY,
)
def delta_maintenance(context: AssetExecutionContext, settings: ReelyticsSettingsResource,
                      spark: SparkResource) -> MaterializeResult:
    """Every declared Delta table compacted (OPTIMIZE, rows unchanged) and vacuumed with the retention setting.

    Tables not created yet are skipped. The metadata has files and bytes before and after per table, the files
    the vacuum deleted and the seconds each table took.
    """
    s = settings.get()
    context.log.info("maintaining the Delta tables under %s (vacuum retention %g hours)", s.delta_root_uri,
                     s.delta_vacuum_retention_hours)

    def progress(done: int, total: int, report: TableMaintenance) -> None:
        if report.skipped is None:
            context.log.info("%d/%d %s: %d -> %d files, %d vacuumed, %.1f s", done, total, report.table,
                             report.files_before, report.files_after, report.files_vacuumed, report.seconds)
        else:
            context.log.info("%d/%d %s skipped: %s", done, total, report.table, report.skipped)

    reports = maintain_tables(spark.get(), s, on_table=progress)
    summary = totals(reports)
    return MaterializeResult(metadata={
        **{name: MetadataValue.int(value) if isinstance(value, int) else MetadataValue.float(value)
           for name, value in summary.items()},
        "vacuum_retention_hours": MetadataValue.float(s.delta_vacuum_retention_hours),
        "tables": MetadataValue.md(report_markdown(reports)),
        "per_table": MetadataValue.json({r.table: r.as_dict() for r in reports}),
    })


maintenance_job = define_asset_job(
    "warehouse_maintenance", selection=[delta_maintenance], tags=SPARK_TAGS,
    description="OPTIMIZE and VACUUM every Delta table.",
)

maintenance_schedule = ScheduleDefinition(name="warehouse_maintenance_schedule", job=maintenance_job,
                                          cron_schedule="0 4 * * *", execution_timezone="UTC")
"""At 04:00 UTC, after the nightly build of the dimensions and marts (02:30)."""

MAINTENANCE_ASSETS = [delta_maintenance]
MAINTENANCE_JOBS = [maintenance_job]
MAINTENANCE_SCHEDULES = [maintenance_schedule]

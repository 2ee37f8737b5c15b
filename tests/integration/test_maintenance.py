"""Table maintenance on a real Delta table of many small files: OPTIMIZE compacts, VACUUM deletes what it may.

Contract: after twelve small appends, maintenance leaves fewer live files holding the same rows; with the default
168-hour retention the replaced files stay (a reader may still need them, and time travel still works); with a
0-hour retention, allowed explicitly, vacuum deletes exactly the files OPTIMIZE replaced; a 0-hour retention
without the explicit allowance is refused by the settings; tables not created yet are reported as skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from batch_layer.maintenance import RETENTION_CHECK_CONF, maintain_table, maintain_tables, maintained_tables
from warehouse_models.settings import Settings
from warehouse_models.tables import BRONZE_PLAYBACK, DIM_CONTENT, SILVER_EVENTS

APPENDS = 12


def _parquet_files(path: str) -> set[str]:
    """The table's data files on disk (the log's checkpoints left out)."""
    return {str(p.relative_to(path)) for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts}


def _write_small_files(spark, path: str) -> None:
    """Twelve appends of a few rows each into two date partitions: many small files."""
    from pyspark.sql import functions as F

    for n in range(APPENDS):
        (spark.range(n * 50, n * 50 + 50)
         .withColumn("event_date", F.when(F.col("id") % 2 == 0, F.lit("2026-11-20")).otherwise(F.lit("2026-11-21"))
                     .cast("date"))
         .withColumn("payload", F.sha2(F.col("id").cast("string"), 256))
         .coalesce(1).write.format("delta").mode("append").partitionBy("event_date").save(path))


def _rows(spark, path: str, **options: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.format("delta").options(**options).load(path).collect())


def test_optimize_compacts_and_vacuum_deletes_only_when_retention_allows(spark, isolated: Settings) -> None:
    path = DIM_CONTENT.path(isolated.delta_root_uri)
    _write_small_files(spark, path)
    rows = _rows(spark, path)
    small_files = _parquet_files(path)
    assert len(rows) == APPENDS * 50 and len(small_files) == APPENDS * 2

    kept = maintain_table(spark, isolated, DIM_CONTENT)
    assert (kept.files_before, kept.files_after) == (APPENDS * 2, 2)
    assert kept.files_compacted == APPENDS * 2 and kept.files_written == 2
    assert kept.bytes_before > 0 and kept.bytes_after > 0 and kept.skipped is None
    assert kept.files_vacuumed == 0, "files younger than 168 hours were deleted"
    assert _rows(spark, path) == rows
    assert small_files <= _parquet_files(path)
    assert _rows(spark, path, versionAsOf=str(APPENDS - 1)) == rows  # time travel still reads the old files

    short = isolated.model_copy(update={"delta_vacuum_retention_hours": 0.0,
                                        "delta_vacuum_allow_short_retention": True})
    vacuumed = maintain_table(spark, short, DIM_CONTENT)
    assert vacuumed.files_before == vacuumed.files_after == 2 and vacuumed.files_compacted == 0
    assert vacuumed.files_vacuumed == APPENDS * 2
    remaining = _parquet_files(path)
    assert len(remaining) == 2 and not remaining & small_files
    assert _rows(spark, path) == rows
    assert spark.conf.get(RETENTION_CHECK_CONF, "true") == "true", "the safety check was left off"


def test_short_retention_needs_the_explicit_allowance(isolated: Settings) -> None:
    with pytest.raises(ValidationError, match="REELYTICS_DELTA_VACUUM_ALLOW_SHORT_RETENTION"):
        Settings(data_dir=isolated.data_dir, delta_vacuum_retention_hours=0)


def test_tables_not_created_yet_are_skipped(spark, isolated: Settings) -> None:
    reports = maintain_tables(spark, isolated, specs=[BRONZE_PLAYBACK, SILVER_EVENTS])
    assert [(r.table, r.skipped) for r in reports] == [(BRONZE_PLAYBACK.name, "not created yet"),
                                                       (SILVER_EVENTS.name, "not created yet")]


def test_the_dagster_asset_reports_each_table(spark, isolated: Settings, monkeypatch, tmp_path) -> None:
    from dagster import DagsterInstance, materialize

    from orchestration.defs.warehouse.maintenance import delta_maintenance
    from orchestration.resources import ReelyticsSettingsResource, SparkResource
    from tests.warehouse_support import use_settings

    use_settings(monkeypatch, isolated)
    path = DIM_CONTENT.path(isolated.delta_root_uri)
    _write_small_files(spark, path)
    rows = _rows(spark, path)
    resources = {"settings": ReelyticsSettingsResource(), "spark": SparkResource()}
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        result = materialize([delta_maintenance], resources=resources, instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("delta_maintenance")[0].metadata
    assert metadata["tables_maintained"].value == 1
    assert metadata["tables_skipped"].value == len(maintained_tables()) - 1
    assert (metadata["files_before"].value, metadata["files_after"].value) == (APPENDS * 2, 2)
    assert metadata["per_table"].data[DIM_CONTENT.name]["files_vacuumed"] == 0
    assert metadata["per_table"].data[BRONZE_PLAYBACK.name]["skipped"] == "not created yet"
    assert "| dim_content | 24 | 2 |" in metadata["tables"].md_str
    assert _rows(spark, path) == rows

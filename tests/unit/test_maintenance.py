"""The pure part of table maintenance: which tables are maintained and what a run reports."""

from __future__ import annotations

from batch_layer.maintenance import (
    TableMaintenance,
    maintained_tables,
    needs_retention_check_off,
    report_markdown,
    skipped,
    totals,
)
from warehouse_models.marts import MART_TABLES
from warehouse_models.tables import ALL_TABLES, DIM_USERS, FACT_STREAM_EVENTS


def test_every_declared_table_once_in_layer_order():
    names = [spec.name for spec in maintained_tables()]
    assert names == [spec.name for spec in (*ALL_TABLES, *MART_TABLES)]
    assert len(set(names)) == len(names)
    assert names[0] == "bronze_playback" and names[-1] == MART_TABLES[-1].name
    assert [s.name for s in maintained_tables([DIM_USERS, FACT_STREAM_EVENTS, DIM_USERS])] == [
        "dim_users", "fact_stream_events"]


def test_retention_under_168_hours_needs_the_check_off():
    assert needs_retention_check_off(0) and needs_retention_check_off(167.5)
    assert not needs_retention_check_off(168) and not needs_retention_check_off(720)


def test_totals_and_markdown_count_only_maintained_tables():
    reports = [
        TableMaintenance("fact_stream_events", files_before=40, bytes_before=4 * 1024**2, files_after=4,
                         bytes_after=3 * 1024**2, files_compacted=38, files_written=2, files_vacuumed=12,
                         optimize_seconds=2.5, vacuum_seconds=0.75),
        TableMaintenance("dim_users", files_before=1, bytes_before=2048, files_after=1, bytes_after=2048,
                         optimize_seconds=0.25, vacuum_seconds=0.25),
        skipped("mart_segments", "not created yet"),
    ]
    assert reports[0].seconds == 3.25
    assert reports[0].as_dict()["seconds"] == 3.25 and reports[0].as_dict()["files_vacuumed"] == 12
    assert totals(reports) == {
        "tables_maintained": 2, "tables_skipped": 1, "files_before": 41, "files_after": 5,
        "bytes_before": 4 * 1024**2 + 2048, "bytes_after": 3 * 1024**2 + 2048, "files_compacted": 38,
        "files_vacuumed": 12, "seconds": 3.75,
    }
    lines = report_markdown(reports).splitlines()
    assert lines[0].startswith("| table | files before | files after |")
    assert lines[2] == "| fact_stream_events | 40 | 4 | 4.0 | 3.0 | 38 | 12 | 3.2 |"
    assert lines[4] == "| mart_segments | not created yet | | | | | | |"

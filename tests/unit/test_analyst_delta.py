"""`reelytics sql`'s views over real Delta tables (written by deltalake, no JVM): DuckDB reads the Delta log's file
list, prunes partitions (and says so in EXPLAIN), and falls back to deltalake's dataset where it cannot."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from batch_layer.analyst import (
    EXAMPLE_QUERIES,
    columns_differ_between_files,
    direct_read_blocker,
    duckdb_type,
    gold_tables,
    open_duckdb,
    parquet_view_sql,
    read_parquet_sql,
)
from tests.unit.test_analyst import DAY, expected_answers, on_day, rows, tiny_gold
from warehouse_models.settings import Settings


def write_gold(delta_root: Path) -> Settings:
    """The tiny gold tables of the unit tests as Delta tables, partitioned as declared; settings reading them."""
    from deltalake import write_deltalake

    settings = Settings(delta_root=str(delta_root))
    specs = {spec.name: spec for spec in gold_tables()}
    for name, table in tiny_gold(DAY).items():
        spec = specs[name]
        write_deltalake(spec.path(settings.delta_root_uri), table, mode="overwrite",
                        partition_by=list(spec.partition_by) or None)
    return settings


@pytest.fixture(scope="module")
def gold(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return write_gold(tmp_path_factory.mktemp("gold") / "delta")


def _plan(connection, sql: str) -> str:
    return "\n".join(str(row[-1]) for row in connection.connection.execute("EXPLAIN " + sql).fetchall())


@pytest.mark.parametrize("number", range(1, len(EXAMPLE_QUERIES) + 1))
def test_views_over_the_file_list_answer_every_example(gold: Settings, number: int) -> None:
    connection = open_duckdb(gold)
    try:
        assert all("read_parquet" in source for source in connection.sources.values()), connection.sources
        sql = on_day(EXAMPLE_QUERIES[number - 1].sql, DAY)
        assert rows(connection.query(sql)) == expected_answers(DAY)[number]
    finally:
        connection.close()


def test_views_keep_the_delta_schema(gold: Settings) -> None:
    connection = open_duckdb(gold)
    try:
        described = dict((r[0], r[1]) for r in connection.connection.execute("DESCRIBE dim_users").fetchall())
        assert described["valid_from"] == "TIMESTAMP WITH TIME ZONE" and described["preferences"] == "VARCHAR[]"
        names = [r[0] for r in connection.connection.execute("DESCRIBE mart_qoe_hourly").fetchall()]
        spec = {s.name: s for s in gold_tables()}["mart_qoe_hourly"]
        assert names == list(spec.column_names)  # the partition column where the table has it, not last
    finally:
        connection.close()


def test_explain_shows_the_partitions_pruned_to_the_asked_date(gold: Settings) -> None:
    connection = open_duckdb(gold)
    try:
        one_day = _plan(connection, "SELECT sum(watch_seconds) FROM fact_stream_events "
                                    f"WHERE event_date = DATE '{DAY}'")
        assert "Scanning Files: 1/2" in one_day, one_day
        both = _plan(connection, "SELECT sum(watch_seconds) FROM fact_stream_events")
        assert "Scanning Files: 1/2" not in both
        hours = connection.query("SELECT count(DISTINCT event_hour) AS n FROM mart_qoe_hourly").column("n")[0]
        one_hour = _plan(connection, "SELECT * FROM mart_qoe_hourly WHERE event_hour = (TIMESTAMPTZ "
                                     f"'{DAY} 10:00:00+00')")
        assert f"Scanning Files: 1/{hours.as_py()}" in one_hour, one_hour
        day_rows = connection.query(f"SELECT count(*) AS n FROM fact_stream_events WHERE event_date = DATE '{DAY}'")
        everything = connection.query("SELECT count(*) AS n, count(*) FILTER (event_date = DATE "
                                      f"'{DAY - timedelta(days=1)}') AS before FROM fact_stream_events")
        total, before = everything.column("n")[0].as_py(), everything.column("before")[0].as_py()
        assert day_rows.column("n")[0].as_py() == total - before > 0
    finally:
        connection.close()


def test_a_table_duckdb_cannot_read_as_files_is_read_through_deltalake_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = write_gold(tmp_path / "site=eu" / "delta")  # a folder named like a partition
    with caplog.at_level(logging.WARNING, logger="batch_layer.analyst"):
        connection = open_duckdb(settings)
    try:
        assert all("deltalake dataset" in source for source in connection.sources.values())
        assert "fact_stream_events: reading" in caplog.text and "named like a partition" in caplog.text
        assert rows(connection.query(on_day(EXAMPLE_QUERIES[0].sql, DAY))) == expected_answers(DAY)[1]
    finally:
        connection.close()


def test_files_with_different_columns_are_lined_up_by_name(tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    from batch_layer.analyst import add_delta_view, duckdb_connection

    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"a": [1], "d": [date(2026, 1, 1)]}), partition_by=["d"])
    write_deltalake(path, pa.table({"a": [2], "b": ["x"], "d": [date(2026, 1, 2)]}), partition_by=["d"],
                    mode="append", schema_mode="merge")
    actions = pa.RecordBatchReader.from_stream(DeltaTable(path).get_add_actions(flatten=True)).read_all()
    assert columns_differ_between_files(actions)
    connection = duckdb_connection({})
    add_delta_view(connection, "t", path)
    assert connection.execute("SELECT a, b, d FROM t ORDER BY a").fetchall() == [
        (1, None, date(2026, 1, 1)), (2, "x", date(2026, 1, 2))]
    connection.close()


def test_what_keeps_duckdb_from_reading_the_files_directly() -> None:
    def blocker(**changes) -> str | None:
        args = {"reader_features": None, "configuration": {}, "table_uri": "file:///data/delta/gold/t/",
                "paths": ["d=2026-01-01/part-0.parquet"], "partition_columns": ["d"], **changes}
        return direct_read_blocker(**args)

    assert blocker() is None
    assert "deletion vectors" in (blocker(reader_features=["deletionVectors", "timestampNtz"]) or "")
    assert "column mapping" in (blocker(reader_features=["columnMapping"]) or "")
    assert "column mapping" in (blocker(configuration={"delta.columnMapping.mode": "name"}) or "")
    assert blocker(configuration={"delta.columnMapping.mode": "none"}) is None
    assert "no data files" in (blocker(paths=[]) or "")
    assert "object storage" in (blocker(table_uri="s3://bucket/gold/t") or "")
    assert "partition folders" in (blocker(paths=["part-0.parquet"]) or "")
    assert "partition folders" in (blocker(paths=["d=1/x=2/part-0.parquet"]) or "")
    assert blocker(paths=["part-0.parquet"], partition_columns=[]) is None


def test_delta_types_as_duckdb_types() -> None:
    assert duckdb_type("timestamp") == "TIMESTAMP WITH TIME ZONE"
    assert duckdb_type("timestamp_ntz") == "TIMESTAMP"
    assert duckdb_type("decimal(10,2)") == "DECIMAL(10,2)"
    assert duckdb_type({"type": "array", "elementType": "string", "containsNull": True}) == "VARCHAR[]"
    assert duckdb_type({"type": "map", "keyType": "string", "valueType": "long"}) == "MAP(VARCHAR, BIGINT)"
    assert duckdb_type({"type": "struct", "fields": [{"name": "x y", "type": "date"}]}) == 'STRUCT("x y" DATE)'
    with pytest.raises(ValueError, match="variant"):
        duckdb_type("variant")


def test_view_sql_casts_only_what_the_files_hold_differently() -> None:
    source = read_parquet_sql(["/d/e=2026-01-01/p.parquet"], partition_types={"e": "DATE"}, rows=7)
    assert "hive_partitioning = true" in source and "hive_types = {'e': 'DATE'}" in source
    assert "explicit_cardinality = 7" in source and "union_by_name" not in source
    sql = parquet_view_sql("v", source, columns=[("t", "TIMESTAMP WITH TIME ZONE"), ("n", "BIGINT"), ("new", "DATE")],
                           file_types={"t": "TIMESTAMP", "n": "BIGINT"})
    assert 'CAST("t" AS TIMESTAMP WITH TIME ZONE) AS "t", "n", CAST(NULL AS DATE) AS "new" FROM read_parquet' in sql
    assert "hive_partitioning = false" in read_parquet_sql(["/d/p.parquet"], partition_types={})

"""`reelytics sql` and Spark SQL over real Delta tables: the same views, the same answers.

The tiny gold tables of the unit tests (day D = yesterday, UTC, so query 1's ``current_date - 1`` finds them)
are written with ``deltalake.write_deltalake`` under the test's own Delta root; the marts nobody wrote stay
missing, which is what a half-built gold layer looks like.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch_layer.analyst import EXAMPLE_QUERIES, NoGoldTablesError, gold_tables, open_duckdb, register_spark_views
from reelytics.cli import app
from tests.unit.test_analyst import expected_answers, rows, tiny_gold
from warehouse_models.settings import Settings, settings_environment

COMPARED = (1, 8)
"""Example queries run on both engines: top titles yesterday (fact x dim_content, a relative date) and watch
time by the plan at viewing time (the SCD type 2 point-in-time join)."""


def _yesterday() -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def write_gold(settings: Settings, day: date) -> dict[str, str]:
    """Write the tiny gold tables as Delta (overwriting, partitioned as declared); return name -> path."""
    from deltalake import write_deltalake

    specs = {spec.name: spec for spec in gold_tables()}
    paths = {}
    for name, table in tiny_gold(day).items():
        spec = specs[name]
        paths[name] = spec.path(settings.delta_root_uri)
        write_deltalake(paths[name], table, mode="overwrite", partition_by=list(spec.partition_by) or None)
    return paths


@pytest.fixture
def gold(isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The isolated settings, in the environment the command reads, with the tiny gold tables written."""
    for key, value in settings_environment(isolated).items():
        monkeypatch.setenv(key, value)
    write_gold(isolated, _yesterday())
    return isolated


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["sql", *args], input=input, env={"COLUMNS": "250"})


def test_query_prints_a_table_csv_and_json(gold: Settings) -> None:
    query = EXAMPLE_QUERIES[0].sql
    result = invoke(query)
    assert result.exit_code == 0, result.output
    assert "Alpha" in result.stdout and "News 24" in result.stdout and "3 rows" in result.stdout

    result = invoke(query, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("content_title,genre_primary,watch_hours,viewers\n"
                             "Alpha,drama,1.5,2\nBeta,comedy,0.25,1\nNews 24,news,0.1,1\n")

    result = invoke("SELECT * FROM dim_users WHERE user_id = 'u1' ORDER BY valid_from", "--format", "json")
    assert result.exit_code == 0, result.output
    versions = json.loads(result.stdout)
    assert [(v["subscription_type"], v["is_current"]) for v in versions] == [("basic", False), ("premium", True)]
    assert versions[1]["valid_from"] == f"{_yesterday().isoformat()}T12:00:00+00:00"


def test_file_runs_its_statements(gold: Settings, tmp_path: Path) -> None:
    script = tmp_path / "plans.sql"
    script.write_text("-- plan mix; two statements, the last one answers\n"
                      "CREATE VIEW current_users AS SELECT * FROM dim_users WHERE is_current;\n"
                      "SELECT subscription_type, count(*) AS users FROM current_users "
                      "GROUP BY 1 ORDER BY 2 DESC;\n")
    result = invoke("--file", str(script), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "subscription_type,users\nstandard,2\npremium,1\n"


def test_tables_lists_views_rows_columns_and_missing_tables(gold: Settings) -> None:
    result = invoke("--tables")
    assert result.exit_code == 0, result.output
    out = result.stdout
    fact_rows = tiny_gold(_yesterday())["fact_stream_events"].num_rows
    assert "fact_stream_events" in out and f"{fact_rows:,}" in out
    assert "subscription_type" in out and "(version 0)" in out
    missing = [spec.name for spec in gold_tables() if spec.name not in tiny_gold(_yesterday())]
    assert {"mart_user_engagement_daily", "mart_session_length", "mart_segments", "recs_user_top_n"} <= set(missing)
    for name in missing:
        assert name in out
    assert out.count("not built yet") == len(missing)


def test_interactive_prompt(gold: Settings) -> None:
    result = invoke("--format", "csv", input="SELECT count(*) AS users\nFROM dim_users\nWHERE is_current;\n"
                                             ".tables\n.quit\n")
    assert result.exit_code == 0, result.output
    assert "users\n3\n" in result.stdout
    assert "mart_ctr_daily" in result.stdout


def test_errors_say_what_to_do(isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_environment(isolated).items():
        monkeypatch.setenv(key, value)
    result = invoke("SELECT 1")
    assert result.exit_code == 1
    assert "no gold tables under" in result.stderr and "reelytics backfill" in result.stderr

    write_gold(isolated, _yesterday())
    result = invoke("SELECT nope FROM fact_stream_events")
    assert result.exit_code == 1
    assert 'Referenced column "nope" not found' in result.stderr
    result = invoke("SELECT * FROM mart_segments")
    assert result.exit_code == 1
    assert "mart_segments has not been built yet" in result.stderr


def test_reads_are_repeatable_and_leave_the_tables_alone(gold: Settings) -> None:
    from deltalake import DeltaTable

    specs = {spec.name: spec for spec in gold_tables()}
    written = list(tiny_gold(_yesterday()))
    before = {name: DeltaTable(specs[name].path(gold.delta_root_uri)).version() for name in written}
    answers = []
    for _ in range(2):
        connection = open_duckdb(gold)
        try:
            answers.append([rows(connection.query(example.sql)) for example in EXAMPLE_QUERIES])
        finally:
            connection.close()
    assert answers[0] == answers[1]
    assert answers[0] == [expected_answers(_yesterday())[n] for n in range(1, 11)]
    after = {name: DeltaTable(specs[name].path(gold.delta_root_uri)).version() for name in written}
    assert after == before


def test_spark_sql_gives_the_same_answers(gold: Settings, spark) -> None:
    names = register_spark_views(spark, gold)
    assert names == [spec.name for spec in gold_tables() if spec.name in tiny_gold(_yesterday())]
    connection = open_duckdb(gold)
    try:
        for number in COMPARED:
            sql = EXAMPLE_QUERIES[number - 1].sql
            spark_rows = [tuple(row) for row in spark.sql(sql).collect()]
            assert spark_rows == rows(connection.query(sql)) == expected_answers(_yesterday())[number]
    finally:
        connection.close()
        for name in names:
            spark.catalog.dropTempView(name)


def test_spark_views_need_a_gold_table(isolated: Settings, spark) -> None:
    with pytest.raises(NoGoldTablesError, match="reelytics backfill"):
        register_spark_views(spark, isolated)

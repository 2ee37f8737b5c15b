"""The analyst library: gold views in DuckDB, the ten example queries, output formats and docs/schema.md.

The tiny gold tables here (built by :func:`tiny_gold` for any day D) are also what the integration test writes
to Delta; every expected answer below is worked out by hand from them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from batch_layer.analyst import (
    EXAMPLE_QUERIES,
    SCHEMA_DOC,
    STAR_TABLES,
    AnalystConnection,
    QueryError,
    duckdb_connection,
    format_csv,
    format_json,
    gold_tables,
    run_query,
    schema_markdown,
)
from reelytics.commands.sql import OutputFormat, interactive, statement_complete
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, TableSpec

DAY = date(2026, 1, 5)
"""The fixed day D of the unit tests (the integration test uses yesterday, for query 1)."""

_DEFAULTS: dict[str, Any] = {"string": "", "int": 0, "long": 0, "double": 0.0, "boolean": False,
                             "array<string>": [], "binary": b""}


def _table(spec: TableSpec, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows in the spec's Arrow schema: absent nullable columns are null, absent required ones a zero value."""
    full = []
    for row in rows:
        unknown = set(row) - set(spec.column_names)
        assert not unknown, f"{spec.name} has no columns {unknown}"
        full.append({c.name: row.get(c.name, None if c.nullable else _DEFAULTS.get(c.type)) for c in spec.columns})
    return pa.Table.from_pylist(full, schema=spec.arrow_schema())


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=timezone.utc)


def _session(day: date, session: str, user: str, account: str, content: str, device: str, country: str | None,
             start: datetime, *, startup_ms: int, playing: int, stall_ms: int | None = None,
             paused: int = 0) -> list[dict[str, Any]]:
    """A session's fact rows: play_request, first_frame, ``playing`` playing heartbeats 10 s apart, stalls."""
    common = {"user_id": user, "account_id": account, "content_id": content, "device_type": device,
              "country": country, "session_id": session, "is_live": content.startswith("ch"), "event_date": day}

    def event(kind: str, offset_s: int, **extra: Any) -> dict[str, Any]:
        at = start + timedelta(seconds=offset_s)
        return {**common, "event_id": f"{session}-{kind}-{offset_s}", "event_type": kind, "event_timestamp": at,
                "created_at": at + timedelta(seconds=1), **extra}

    rows = [event("play_request", 0), event("first_frame", 2, startup_ms=startup_ms)]
    rows += [event("heartbeat", 10 * (i + 1), watch_seconds=10.0, position_seconds=10.0 * (i + 1))
             for i in range(playing)]
    rows += [event("heartbeat", 10 * (playing + 1 + i), watch_seconds=0.0) for i in range(paused)]
    if stall_ms is not None:
        rows.append(event("buffer_end", 15, stall_ms=stall_ms))
    return rows


def tiny_gold(day: date) -> dict[str, pa.Table]:
    """Three titles, three users (one upgraded at noon of D), five sessions (four on D, one the day before)."""
    before = day - timedelta(days=1)
    long_ago = _at(day - timedelta(days=10), 0)
    fact = (
        _session(day, "s1", "u1", "a1", "c1", "tv", "US", _at(day, 10), startup_ms=2000, playing=180, stall_ms=1500)
        + _session(day, "s2", "u1", "a1", "c2", "mobile", "US", _at(day, 13), startup_ms=1000, playing=90)
        + _session(day, "s3", "u2", "a2", "c1", "tv", "DE", _at(day, 14), startup_ms=3000, playing=360,
                   stall_ms=500)
        + _session(day, "s4", "u3", "a2", "ch1", "web", "DE", _at(day, 15), startup_ms=4000, playing=36, paused=1)
        + _session(before, "s0", "u2", "a2", "c2", "tv", None, _at(before, 20), startup_ms=2500, playing=72)
        + [
            # A view_end carries nothing in watch_seconds; the queries must not count it either way.
            {"event_id": "ve-s1", "user_id": "u1", "account_id": "a1", "content_id": "c1", "session_id": "s1",
             "event_type": "view_end", "event_timestamp": _at(day, 10, 30), "created_at": _at(day, 10, 31),
             "watch_seconds": 0.0, "device_type": "tv", "country": "US", "event_date": day},
            {"event_id": "i1", "user_id": "u2", "account_id": "a2", "content_id": "c2", "event_type": "impression",
             "event_timestamp": _at(day, 14, 30), "created_at": _at(day, 14, 30), "device_type": "tv",
             "country": "DE", "event_date": day},
            {"event_id": "k1", "user_id": "u2", "account_id": "a2", "content_id": "c2", "event_type": "click",
             "event_timestamp": _at(day, 14, 31), "created_at": _at(day, 14, 31), "device_type": "tv",
             "country": "DE", "event_date": day},
        ]
    )
    content = [
        {"content_id": "c1", "content_title": "Alpha", "content_type": "vod", "genre_primary": "drama",
         "duration_minutes": 100, "cast_members": ["A. Actor", "B. Actor"], "updated_at": long_ago},
        {"content_id": "c2", "content_title": "Beta", "content_type": "vod", "genre_primary": "comedy",
         "duration_minutes": 50, "cast_members": [], "updated_at": long_ago},
        {"content_id": "ch1", "content_title": "News 24", "content_type": "live", "genre_primary": "news",
         "updated_at": long_ago},
    ]
    users = [
        {"user_key": "u1@1", "user_id": "u1", "account_id": "a1", "subscription_type": "basic", "max_streams": 1,
         "valid_from": long_ago, "valid_to": _at(day, 12), "is_current": False},
        {"user_key": "u1@2", "user_id": "u1", "account_id": "a1", "subscription_type": "premium", "max_streams": 4,
         "valid_from": _at(day, 12), "valid_to": None, "is_current": True},
        {"user_key": "u2@1", "user_id": "u2", "account_id": "a2", "subscription_type": "standard", "max_streams": 2,
         "valid_from": long_ago, "valid_to": None, "is_current": True},
        {"user_key": "u3@1", "user_id": "u3", "account_id": "a2", "subscription_type": "standard", "max_streams": 2,
         "valid_from": long_ago, "valid_to": None, "is_current": True},
    ]
    tables = {FACT_STREAM_EVENTS.name: _table(FACT_STREAM_EVENTS, fact),
              DIM_CONTENT.name: _table(DIM_CONTENT, content),
              DIM_USERS.name: _table(DIM_USERS, users)}
    return tables | _tiny_marts(day)


def _tiny_marts(day: date) -> dict[str, pa.Table]:
    from warehouse_models.marts import (
        DROPOFF_POINTS,
        MART_CONCURRENCY_VIOLATIONS,
        MART_CONTENT_PERFORMANCE,
        MART_CTR_DAILY,
        MART_QOE_HOURLY,
        dropoff_column,
    )

    before = day - timedelta(days=1)

    def curve(reached: float, until_pct: int, after: float) -> dict[str, float]:
        return {dropoff_column(p): (reached if p <= until_pct else after) for p in DROPOFF_POINTS}

    performance = [
        {"content_id": "c1", "duration_minutes": 100, "views": 2, "watch_seconds": 5400.0, "completed_views": 1,
         "completion_rate": 0.5, **curve(1.0, 50, 0.5), "event_date": day},
        {"content_id": "c2", "duration_minutes": 50, "views": 1, "watch_seconds": 900.0, "completed_views": 0,
         "completion_rate": 0.0, **curve(1.0, 40, 0.0), "event_date": day},
        {"content_id": "c2", "duration_minutes": 50, "views": 1, "watch_seconds": 720.0, "completed_views": 0,
         "completion_rate": 0.0, **curve(1.0, 100, 1.0), "event_date": before},
        {"content_id": "ch1", "views": 1, "watch_seconds": 360.0, "event_date": day},
    ]

    def qoe(content: str, device: str, country: str, hour: int, playing: int, stall: int, rebuffers: int):
        return {"content_id": content, "device_type": device, "country": country, "plays": 1, "startups": 1,
                "playing_seconds": playing, "stall_ms": stall, "rebuffers": rebuffers, "event_date": day,
                "event_hour": _at(day, hour)}

    quality = [qoe("c1", "tv", "US", 10, 1800, 1500, 1), qoe("c1", "tv", "DE", 14, 3600, 500, 1),
               qoe("c2", "mobile", "US", 13, 900, 0, 0), qoe("ch1", "web", "DE", 15, 360, 0, 0)]
    ctr = [
        {"button_id": "tile", "rail_id": "home_trending", "impressions": 100, "clicks": 7, "ctr": 0.07,
         "event_date": day},
        {"button_id": "play", "rail_id": "detail", "impressions": 20, "clicks": 5, "ctr": 0.25, "event_date": day},
        {"button_id": "tile", "rail_id": "home_trending", "impressions": 100, "clicks": 3, "ctr": 0.03,
         "event_date": before},
    ]
    violations = [
        {"account_id": "a2", "max_streams": 2, "sessions": 3, "sessions_over_limit": 1, "peak_streams": 3,
         "over_limit_session_ids": ["s9"], "event_date": day},
        {"account_id": "a2", "max_streams": 2, "sessions": 4, "sessions_over_limit": 2, "peak_streams": 4,
         "over_limit_session_ids": ["s7", "s8"], "event_date": before},
        {"account_id": "a9", "max_streams": 1, "sessions": 2, "sessions_over_limit": 1, "peak_streams": 2,
         "over_limit_session_ids": ["s6"], "event_date": day},
    ]
    return {MART_CONTENT_PERFORMANCE.name: _table(MART_CONTENT_PERFORMANCE, performance),
            MART_QOE_HOURLY.name: _table(MART_QOE_HOURLY, quality),
            MART_CTR_DAILY.name: _table(MART_CTR_DAILY, ctr),
            MART_CONCURRENCY_VIOLATIONS.name: _table(MART_CONCURRENCY_VIOLATIONS, violations)}


def expected_answers(day: date) -> dict[int, list[tuple[Any, ...]]]:
    """Each example query's whole answer on :func:`tiny_gold` (query 1 asked on the day after D)."""
    before = day - timedelta(days=1)
    return {
        # watch hours on D: Alpha 180 + 360 playing heartbeats, Beta 90, News 24 36 (the paused one is 0 s).
        1: [("Alpha", "drama", 1.5, 2), ("Beta", "comedy", 0.25, 1), ("News 24", "news", 0.1, 1)],
        2: [("drama", 2, 1, 0.5), ("comedy", 2, 0, 0.0)],
        # tv: 2 s stalled against 5400 s playing.
        3: [("tv", 2, 0.0004, 1.33), ("mobile", 0, 0.0, 0.0), ("web", 0, 0.0, 0.0)],
        4: [("detail", "play", 20, 5, 0.25), ("home_trending", "tile", 200, 10, 0.05)],
        5: [("standard", 2, 0.667), ("premium", 1, 0.333)],
        6: [(before, 1, 1, 0.2), (day, 3, 4, 1.85)],
        7: [("DE", 2, 3500.0, 4000), ("unknown", 1, 2500.0, 2500), ("US", 2, 1500.0, 2000)],
        # u1 watched s1 (0.5 h) on basic before the noon upgrade and s2 (0.25 h) on premium after it.
        8: [("standard", 2, 1.3), ("basic", 1, 0.5), ("premium", 1, 0.25)],
        9: [("a2", 2, 3, 4, 2), ("a9", 1, 1, 2, 1)],
        10: [("Beta", 2, 0.5, 0.5), ("Alpha", 2, 1.0, 0.5)],
    }


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in table.to_pylist()]


def on_day(sql: str, day: date) -> str:
    """Query 1 asks about yesterday; pin it to the day after D."""
    return sql.replace("current_date - 1", f"DATE '{day.isoformat()}'")


@pytest.fixture
def connection():
    con = duckdb_connection(tiny_gold(DAY))
    yield con
    con.close()


@pytest.mark.parametrize("number", range(1, len(EXAMPLE_QUERIES) + 1))
def test_example_query_answers(connection, number: int) -> None:
    sql = on_day(EXAMPLE_QUERIES[number - 1].sql, DAY)
    assert rows(run_query(connection, sql)) == expected_answers(DAY)[number]


def test_ten_examples_and_query_one_asks_about_yesterday() -> None:
    assert len(EXAMPLE_QUERIES) == 10
    assert "current_date - 1" in EXAMPLE_QUERIES[0].sql


def test_connection_is_utc(connection) -> None:
    # 23:30 UTC stays on its UTC date whatever the machine's zone.
    result = run_query(connection, "SELECT CAST(TIMESTAMPTZ '2026-01-05 23:30:00+00' AS DATE) AS d, "
                                   "current_setting('TimeZone') AS tz")
    assert rows(result) == [(date(2026, 1, 5), "UTC")]


def test_statement_without_result_and_several_statements(connection) -> None:
    assert rows(run_query(connection, "CREATE VIEW alpha AS SELECT 1 AS x; SELECT x + 1 AS y FROM alpha")) == [(2,)]
    assert run_query(connection, "SET threads = 1").column_names == ["Success"]


def test_sql_error_carries_duckdb_message_and_a_hint(connection) -> None:
    with pytest.raises(QueryError, match=r"(?s)Parser Error: syntax error.*selec"):
        run_query(connection, "selec 1")
    with pytest.raises(QueryError, match=r"(?s)Table with name nowhere does not exist.*--tables"):
        run_query(connection, "SELECT * FROM nowhere")
    with pytest.raises(QueryError, match=r"(?s)mart_segments has not been built yet: .*reelytics backfill"):
        run_query(connection, "SELECT * FROM mart_segments", missing=("mart_segments",))


def test_gold_tables_are_the_star_schema_then_the_marts_then_the_recommendations() -> None:
    from warehouse_models.marts import MART_TABLES
    from warehouse_models.recommendations import RECOMMENDATION_TABLES

    specs = gold_tables()
    assert specs == STAR_TABLES + MART_TABLES + RECOMMENDATION_TABLES
    assert all(spec.layer == "gold" for spec in specs)


def test_format_csv_and_json() -> None:
    table = pa.table({
        "title": ["Alpha", None],
        "hours": [1.5, None],
        "day": [date(2026, 1, 5), date(2026, 1, 6)],
        "at": pa.array([datetime(2026, 1, 5, 10, tzinfo=timezone.utc), None], pa.timestamp("us", tz="UTC")),
        "cast": [["A, B", "C"], []],
        "live": [True, False],
    })
    assert format_csv(table) == (
        "title,hours,day,at,cast,live\n"
        'Alpha,1.5,2026-01-05,2026-01-05T10:00:00+00:00,"[""A, B"", ""C""]",true\n'
        ",,2026-01-06,,[],false\n"
    )
    import json

    assert json.loads(format_json(table)) == [
        {"title": "Alpha", "hours": 1.5, "day": "2026-01-05", "at": "2026-01-05T10:00:00+00:00",
         "cast": ["A, B", "C"], "live": True},
        {"title": None, "hours": None, "day": "2026-01-06", "at": None, "cast": [], "live": False},
    ]


def test_schema_doc_is_up_to_date() -> None:
    assert SCHEMA_DOC.read_text(encoding="utf-8") == schema_markdown(), (
        "docs/schema.md is stale: run `python -m batch_layer.analyst`")


def test_schema_markdown_explains_every_column_and_shows_every_example() -> None:
    text = schema_markdown()
    for spec in gold_tables():
        assert f"### {spec.name}\n" in text
        for column in spec.columns:
            assert f"| `{column.name}` | {column.type} |" in text
    for example in EXAMPLE_QUERIES:
        assert example.sql + ";\n```" in text


def test_statement_complete() -> None:
    assert not statement_complete("SELECT 1")
    assert not statement_complete("SELECT ';'\nFROM t")
    assert statement_complete("SELECT 1\n  ;  ")


def test_interactive_reads_until_semicolon_and_handles_dot_commands(capsys) -> None:
    from rich.console import Console

    lines = iter(["", ".help", "SELECT 'D' AS answer,", "  2 AS n;", "selec 1;", ".nope", ".tables",
                  "SELECT 3 AS n", ";", ".quit", "SELECT 'never' AS n;"])
    prompts: list[str] = []

    def read_line(prompt: str) -> str:
        prompts.append(prompt)
        return next(lines)

    con = AnalystConnection(duckdb_connection({"dim_content": tiny_gold(DAY)["dim_content"]}),
                            {"dim_content": "memory"}, ("dim_users",))
    console = Console(width=200, force_terminal=False)
    interactive(con, output_format=OutputFormat.csv, max_rows=10, console=console, read_line=read_line)
    out = capsys.readouterr().out
    assert "answer,n\nD,2\n" in out
    assert "n\n3\n" in out
    assert "Parser Error" in out
    assert "unknown command .nope" in out
    assert "dim_content" in out and "not built yet" in out and "dim_users" in out
    assert "never" not in out
    assert prompts == ["sql> ", "sql> ", "sql> ", "  -> ", "sql> ", "sql> ", "sql> ", "sql> ", "  -> ", "sql> "]


def test_table_output_shows_null_brackets_and_a_row_count(capsys) -> None:
    from rich.console import Console

    from reelytics.commands.sql import print_result

    table = pa.table({"cast": [["[bold]x"], None, []], "n": [1, 2, 3]})
    console = Console(width=80, force_terminal=False)
    print_result(table, output_format=OutputFormat.table, max_rows=2, console=console)
    out = capsys.readouterr().out
    assert '["[bold]x"]' in out and "NULL" in out and "│ 2 │" in out and "│ 3 │" not in out
    assert "2 of 3 rows shown (--max-rows)" in out
    print_result(table.slice(0, 1), output_format=OutputFormat.table, max_rows=2, console=console)
    assert capsys.readouterr().out.rstrip().endswith("1 row")

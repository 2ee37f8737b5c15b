"""Gold transformations on small hand-made frames (local Spark, no Delta).

Contract: the fact table has one row per silver event with ``watch_seconds`` = 10 for a playing heartbeat and
0 otherwise (a view_end's session total kept apart), buffering flagged, ``created_at`` from the data and the
event date; ``dim_content`` holds each title's newest record by event time; ``dim_users`` holds one row per
version of a user (a changed attribute opens a version, a repeated record does not), with ``valid_to`` the next
version's ``valid_from``, one current version and a deterministic ``user_key``.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest

from batch_layer.gold.job import dates_of_hours
from batch_layer.marts.job import run_concurrently
from warehouse_models.marts import MART_TABLES
from warehouse_models.tables import BRONZE_TABLES, FACT_STREAM_EVENTS, SILVER_EVENTS, TableSpec, table_properties
from warehouse_models.types import Column

T0 = datetime(2026, 1, 5, 23, 59, 50, tzinfo=timezone.utc)


def test_dates_of_hours_are_utc_dates():
    late_evening = datetime(2026, 1, 6, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert dates_of_hours([T0, T0 + timedelta(hours=1), late_evening]) == {date(2026, 1, 5), date(2026, 1, 6)}


def test_statistics_columns_are_checked_against_the_spec() -> None:
    columns = (Column("a", "string", "a"), Column("d", "date", "d"))
    with pytest.raises(ValueError, match="not columns"):
        TableSpec("t", "gold", columns, ("d",), "t", stats_columns=("b",))
    with pytest.raises(ValueError, match="partition columns need no statistics"):
        TableSpec("t", "gold", columns, ("d",), "t", stats_columns=("d",))
    assert table_properties(TableSpec("t", "gold", columns, ("d",), "t")) == {}
    assert table_properties(TableSpec("t", "gold", columns, ("d",), "t", stats_columns=("a",))) == {
        "delta.dataSkippingStatsColumns": "a"}
    # What the jobs filter on keeps its statistics: bronze by event and ingestion time, silver and fact by event time.
    for spec in BRONZE_TABLES:
        if spec.stats_columns is not None:
            assert {"event_timestamp", "ingested_at"} <= set(spec.stats_columns)
    assert SILVER_EVENTS.stats_columns is not None and "event_timestamp" in SILVER_EVENTS.stats_columns
    assert FACT_STREAM_EVENTS.stats_columns is not None and "event_timestamp" in FACT_STREAM_EVENTS.stats_columns


def test_marts_run_at_once_and_every_one_runs_when_one_fails() -> None:
    started: list[str] = []
    both_running = threading.Barrier(2, timeout=5)

    def build(spec: TableSpec) -> None:
        started.append(spec.name)
        if spec in MART_TABLES[:2]:
            both_running.wait()  # raises BrokenBarrierError unless the first two marts run at the same time
        if spec is MART_TABLES[2]:
            raise ValueError("no rows")

    with pytest.raises(RuntimeError, match=f"1 of {len(MART_TABLES)} marts failed .*{MART_TABLES[2].name}.*no rows"):
        run_concurrently(build, MART_TABLES, workers=2)
    assert sorted(started) == sorted(spec.name for spec in MART_TABLES)

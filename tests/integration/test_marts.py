"""The marts job on real Delta tables: a tiny fact table and dims under a fresh Delta root, every mart built for a
date, twice, with identical tables; the other dates' partitions are left alone and a date can be built later.
"""

from __future__ import annotations

from typing import Any

from batch_layer.marts.job import build_marts
from batch_layer.marts.sessions import conform
from tests.spark.test_marts import D1, SHARED, T0, D, dim_content, fact_row, frame
from warehouse_models.marts import (
    MART_CONCURRENCY_VIOLATIONS,
    MART_CTR_DAILY,
    MART_QOE_HOURLY,
    MART_TABLES,
    MART_USER_ENGAGEMENT_DAILY,
)
from warehouse_models.settings import Settings
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, TableSpec

INTERACTIONS = [
    fact_row("impression", 500, content="vod-3", rail_id="r1", button_id="tile"),
    fact_row("impression", 501, content="vod-3", rail_id="r1", button_id="tile"),
    fact_row("click", 502, content="vod-3", rail_id="r1", button_id="tile"),
]
# Two streams of account a1 at once on a plan of one: the second is over the limit.
OVERLAP = [fact_row("heartbeat", at, session=session, position=0.0, state="playing")
           for session, times in (("c1", (1000, 1300)), ("c2", (1100, 1200))) for at in times]


def _write(spark, spec: TableSpec, df, root: str) -> None:
    writer = conform(df, spec).write.format("delta").mode("overwrite")
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    writer.save(spec.path(root))


def _users(spark):
    names = DIM_USERS.column_names
    since = T0.replace(day=1, hour=0)
    rows = [{"user_key": f"{user}-1", "user_id": user, "account_id": account, "max_streams": 1,
             "valid_from": since, "valid_to": None, "is_current": True}
            for user, account in (("u1", "a1"), ("u2", "a2"), ("u3", "a3"), ("u4", "a4"))]
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], DIM_USERS.spark_ddl())


def _snapshot(spark, root: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every mart table's rows, sorted (a missing table reads as None)."""
    from delta.tables import DeltaTable

    out: dict[str, Any] = {}
    for spec in MART_TABLES:
        path = spec.path(root)
        if not DeltaTable.isDeltaTable(spark, path):
            out[spec.name] = None
            continue
        out[spec.name] = sorted((tuple(r) for r in spark.read.format("delta").load(path).collect()), key=repr)
    return out


def test_build_marts_writes_each_date_whole_and_a_rerun_is_identical(spark, isolated: Settings):
    from delta.tables import DeltaTable

    root = isolated.delta_root_uri
    extra = (("rail_id", "string"), ("button_id", "string"))
    _write(spark, FACT_STREAM_EVENTS, frame(spark, SHARED + INTERACTIONS + OVERLAP, extra=extra), root)
    _write(spark, DIM_CONTENT, dim_content(spark), root)
    _write(spark, DIM_USERS, _users(spark), root)
    has_ctr_columns = {"rail_id", "button_id"} <= set(FACT_STREAM_EVENTS.column_names)

    first = build_marts(spark, isolated, dates=[D])
    tables = _snapshot(spark, root)
    second = build_marts(spark, isolated, dates=[D])
    assert _snapshot(spark, root) == tables
    assert first.rows == second.rows
    if has_ctr_columns:
        assert first.skipped == {}
        assert tables[MART_CTR_DAILY.name] == [("tile", "r1", 2, 1, 0.5, D)]
    else:
        assert set(first.skipped) == {MART_CTR_DAILY.name}
    assert {name: len(tables[name]) for name in first.rows} == first.rows

    users = {row[0]: row for row in tables[MART_USER_ENGAGEMENT_DAILY.name]}
    # u1: the shared scenario's 30 s, 2 sessions and 10 events, plus c1/c2 (4 playing heartbeats) and 3 interactions.
    assert users["u1"][2:5] == (70.0, 4, 17)
    for spec in MART_TABLES:
        rows = tables[spec.name] or []
        assert all((row[-1].date() if spec is MART_QOE_HOURLY else row[-1]) == D for row in rows), spec.name
    assert tables[MART_CONCURRENCY_VIOLATIONS.name] == [("a1", 1, 3, 1, 2, ["c2"], D)]

    # The re-run replaced the partition rather than adding to it, and D+1 was not written.
    history = DeltaTable.forPath(spark, MART_USER_ENGAGEMENT_DAILY.path(root)).history(1).collect()[0]
    assert history["operation"] == "WRITE"
    assert history["operationParameters"]["mode"] == "Overwrite"
    assert "event_date" in history["operationParameters"]["predicate"]

    # Building D+1 later adds its partition and leaves D's rows as they were.
    build_marts(spark, isolated, dates=[D1])
    after = _snapshot(spark, root)
    for name, rows in tables.items():
        if rows is None:
            continue
        assert [row for row in after[name] if row in rows] == rows
    assert ("u2", "a2", 20.0, 0, 2, 0, 1, D1) in after[MART_USER_ENGAGEMENT_DAILY.name]

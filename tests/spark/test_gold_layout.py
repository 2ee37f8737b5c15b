"""Gold writes sized for readers: a rebuild leaves one file per partition, whatever the tasks that held its rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from batch_layer.marts.job import ensure_table
from batch_layer.silver.job import overwrite_partitions
from warehouse_models.tables import TableSpec
from warehouse_models.types import Column

SPEC = TableSpec(name="layout_probe", layer="gold", doc="probe", partition_by=("event_date",),
                 columns=(Column("n", "long", "n"), Column("event_date", "date", "date")))
DATES = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]


def _files_per_date(path: str) -> dict[str, int]:
    actions = pa.RecordBatchReader.from_stream(DeltaTable(path).get_add_actions(flatten=True)).read_all()
    counts: dict[str, int] = {}
    for value in actions.column("partition.event_date").to_pylist():
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def _rows(spark, dates: list[date]):
    # Eight tasks, each holding rows of every date: a plain write leaves up to eight files per date.
    rows = [(n, dates[n % len(dates)]) for n in range(800)]
    return spark.createDataFrame(rows, "n long, event_date date").repartition(8)


def test_a_rebuild_for_readers_leaves_one_file_per_partition(spark, tmp_path: Path) -> None:
    plain, sized = str(tmp_path / "plain"), str(tmp_path / "sized")
    for path in (plain, sized):
        ensure_table(spark, SPEC, path)
    overwrite_partitions(_rows(spark, DATES), SPEC, plain, values=DATES)
    overwrite_partitions(_rows(spark, DATES), SPEC, sized, values=DATES, for_readers=True)
    assert min(_files_per_date(plain).values()) > 1
    assert _files_per_date(sized) == {d.isoformat(): 1 for d in DATES}
    # Rebuilding one date replaces exactly its partition, still as one file; the others are untouched.
    before = DeltaTable(sized).file_uris()
    overwrite_partitions(_rows(spark, DATES[1:2]), SPEC, sized, values=DATES[1:2], for_readers=True)
    assert _files_per_date(sized) == {d.isoformat(): 1 for d in DATES}
    after = DeltaTable(sized).file_uris()
    assert len(set(before) & set(after)) == 2
    total = spark.read.format("delta").load(sized).count()
    assert total == 800 - 267 + 800  # date 2 held rows n % 3 == 1 (267 of 800); its rebuild wrote 800


STATS_SPEC = TableSpec(name="stats_probe", layer="gold", doc="probe", partition_by=("event_date",),
                       columns=(Column("user_id", "string", "u"), Column("title", "string", "t"),
                                Column("n", "long", "n"), Column("event_date", "date", "date")),
                       stats_columns=("user_id", "n"))


def _stats_keys(path: str) -> set[str]:
    """The columns with a min value in the statistics of the table's files (from the Delta log)."""
    actions = pa.RecordBatchReader.from_stream(DeltaTable(path).get_add_actions(flatten=True)).read_all()
    return {name.removeprefix("min.") for name in actions.column_names if name.startswith("min.")
            and any(value is not None for value in actions.column(name).to_pylist())}


def test_files_carry_statistics_of_the_declared_columns_only(spark, tmp_path: Path) -> None:
    made, older = str(tmp_path / "made"), str(tmp_path / "older")
    rows = spark.createDataFrame([(f"u{n}", f"t{n}", n, DATES[n % 3]) for n in range(30)],
                                 "user_id string, title string, n long, event_date date")
    ensure_table(spark, STATS_SPEC, made)
    overwrite_partitions(rows, STATS_SPEC, made, values=DATES)
    assert DeltaTable(made).metadata().configuration["delta.dataSkippingStatsColumns"] == "user_id,n"
    assert _stats_keys(made) == {"user_id", "n"}
    # A table made before the spec named its statistics columns keeps Delta's default until it is ensured again.
    plain = TableSpec(name=STATS_SPEC.name, layer="gold", doc="probe", partition_by=("event_date",),
                      columns=STATS_SPEC.columns)
    ensure_table(spark, plain, older)
    overwrite_partitions(rows, plain, older, values=DATES)
    assert _stats_keys(older) == {"user_id", "title", "n"}
    ensure_table(spark, STATS_SPEC, older)
    overwrite_partitions(rows, STATS_SPEC, older, values=DATES)
    assert _stats_keys(older) == {"user_id", "n"}
    assert spark.read.format("delta").load(older).where("n >= 10 AND user_id = 'u12'").count() == 1

"""What each event contributes to a view: the one definition, reduced by Spark or by Arrow.

A view without session state is a function of its events' contributions: each event that passes the view's
``where`` gives one row of named values (``columns``, Spark expressions on the envelope), or several when one of
them is an array (``explode``); the rows are then grouped by ``keys`` and their ``sums`` added, their ``distinct``
values collected (sorted); a view without keys takes the rows as they are (its writer reduces them, e.g. newest by
event time).

Two reductions of the same definition:

* :func:`reduce_frame` on a Spark frame: the batch layer and the tests, millions of events;
* :func:`stream_columns` puts every view's contributions side by side as columns of the speed layer's one
  streaming projection (the plan is built once, when the query starts), and :func:`reduce_table` groups each
  micro-batch's rows on the driver with Arrow's C++ kernels, once the batch was collected in one Spark job.

Both give the same rows (``tests/spark/test_speed_contributions.py`` checks it view by view).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn

FLAG = "?"
"""Suffix of the boolean column that says whether an event contributes to a view (``<view>?``)."""

SEPARATOR = "."
"""Between a view's tag and its column's name in the streaming projection (``<view>.<column>``)."""


@dataclass(frozen=True)
class Contributions:
    """What each event gives a view and how those rows reduce."""

    where: Callable[[], SparkColumn]
    """The events that contribute (null counts as false)."""

    columns: Callable[[], Mapping[str, SparkColumn]]
    """Each contribution's values by name, in output order."""

    keys: tuple[str, ...] = ()
    """Group the rows by these columns; empty: the rows as they are."""

    sums: tuple[str, ...] = ()
    """Columns added up per key (longs)."""

    distinct: tuple[str, ...] = ()
    """Columns whose distinct non-null values are collected per key, as a sorted list."""

    explode: str | None = None
    """An array column: one row per element (the other columns repeated); an empty array gives none."""

    def __post_init__(self) -> None:
        if not self.keys and (self.sums or self.distinct):
            raise ValueError("sums and distinct values need keys to group by")


def window_start(width_seconds: int) -> SparkColumn:
    """Epoch second of the tumbling event-time window of ``width_seconds`` an event falls in (Spark's ``window``
    start, as a number so that several widths fit in one projection)."""
    from pyspark.sql import functions as F

    second = F.unix_seconds(F.col("event_timestamp"))
    return second - F.pmod(second, F.lit(width_seconds))


def reduce_frame(frame: DataFrame, spec: Contributions) -> DataFrame:
    """The reduced rows of a Spark frame of valid events (the keys, then the sums, then the distinct lists)."""
    from pyspark.sql import functions as F

    rows = frame.where(spec.where()).select(*[column.alias(name) for name, column in spec.columns().items()])
    if spec.explode is not None:
        rows = rows.withColumn(spec.explode, F.explode(spec.explode))
    if not spec.keys:
        return rows
    aggregates = ([F.sum(name).cast("long").alias(name) for name in spec.sums]
                  + [F.array_sort(F.collect_set(name)).alias(name) for name in spec.distinct])
    return rows.groupBy(*spec.keys).agg(*aggregates)


def stream_columns(tag: str, spec: Contributions, scope: SparkColumn) -> list[SparkColumn]:
    """The view's columns in a shared projection: ``<tag>?`` (the event contributes: ``scope`` and ``where``) and
    each value as ``<tag>.<name>``, null on the rows that do not contribute."""
    from pyspark.sql import functions as F

    contributes = F.coalesce(scope & spec.where(), F.lit(False))
    return [contributes.alias(tag + FLAG), *[F.when(contributes, column).alias(f"{tag}{SEPARATOR}{name}")
                                             for name, column in spec.columns().items()]]


def reduce_table(table: pa.Table, tag: str, spec: Contributions, *, keep: pa.Array | pa.ChunkedArray | None = None,
                 ) -> list[dict[str, Any]]:
    """One view's reduced rows from a collected shared projection (:func:`stream_columns`), as dicts.

    Args:
        table: the micro-batch's projection, every view's columns side by side.
        tag: the view's tag in it.
        keep: a boolean mask of the rows the view may see (e.g. the events inside the allowed lateness).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = table[tag + FLAG]
    if keep is not None:
        mask = pc.and_(mask, keep)
    prefix = tag + SEPARATOR
    names = [name[len(prefix):] for name in table.column_names if name.startswith(prefix)]
    rows = table.filter(mask).select([prefix + name for name in names]).rename_columns(names)
    if spec.explode is not None:
        rows = rows.combine_chunks()
        lists = rows[spec.explode].chunk(0) if rows.num_rows else pa.array([], rows.schema.field(spec.explode).type)
        index = names.index(spec.explode)
        rows = rows.take(pc.list_parent_indices(lists)).set_column(index, spec.explode, pc.list_flatten(lists))
    if not spec.keys:
        return rows.to_pylist()
    aggregates = [(name, "sum") for name in spec.sums] + [(name, "distinct") for name in spec.distinct]
    grouped = rows.group_by(list(spec.keys), use_threads=False).aggregate(aggregates)
    grouped = grouped.rename_columns([name.rsplit("_", 1)[0] if name not in spec.keys else name
                                      for name in grouped.column_names])
    out = grouped.to_pylist()
    for row in out:
        for name in spec.distinct:
            row[name] = sorted(value for value in row[name] if value is not None)
    return out

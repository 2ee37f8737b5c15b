"""Read the part of a Delta table a check looks at, through ``deltalake`` and Arrow, into pandas.

Why not Spark: a check reads one partition (an event hour of silver, a date of the fact table) and only the
columns its expectations name, then runs a dozen expectations over it. delta-rs reads that straight into Arrow
in the calling process (partition values and file statistics prune the files, no JVM job to plan), and
great-expectations' pandas engine evaluates each expectation in memory in milliseconds to seconds for an hour
of a million events (~100 MB of Arrow for ten columns). On Spark, each expectation is at least one Spark job,
seconds each on two cores, and the check would need the JVM that the Dagster check step otherwise never starts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from batch_layer.analyst import deltalake_uri

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as pads
    from deltalake import DeltaTable

    from warehouse_models.settings import Settings
    from warehouse_models.tables import TableSpec

logger = logging.getLogger(__name__)


class TableNotBuiltError(RuntimeError):
    """A checked table (or one it is compared with) does not exist yet."""


def delta_table(settings: Settings, spec: TableSpec) -> DeltaTable:
    """The table's current Delta version (a clear error naming the asset to build when it does not exist)."""
    from deltalake import DeltaTable

    path = spec.path(settings.delta_root_uri)
    uri = deltalake_uri(path)
    if not DeltaTable.is_deltatable(uri):
        raise TableNotBuiltError(f"{spec.name} does not exist at {path}: materialize the {spec.name} asset "
                                 "(or run `reelytics backfill`) before checking it")
    return DeltaTable(uri)


def open_dataset(settings: Settings, spec: TableSpec) -> pads.Dataset:
    """The table's current Delta version as an Arrow dataset (partition-aware)."""
    return delta_table(settings, spec).to_pyarrow_dataset()


def utc_scalar(value: datetime) -> pa.Scalar:
    """An aware time as an Arrow UTC timestamp in microseconds (how Spark's Delta tables store timestamps)."""
    import pyarrow as pa

    return pa.scalar(value.astimezone(timezone.utc), type=pa.timestamp("us", tz="UTC"))


def hour_filter(column: str, hour: datetime) -> pads.Expression:
    """Rows whose timestamp ``column`` lies in the UTC hour starting at ``hour``."""
    import pyarrow.dataset as pads

    start = hour.astimezone(timezone.utc)
    return (pads.field(column) >= utc_scalar(start)) & (pads.field(column) < utc_scalar(start + timedelta(hours=1)))


def day_filter(column: str, day: date, *, timestamp: bool) -> pads.Expression:
    """Rows of the UTC date ``day``: equality on a date column, a range on a timestamp column."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    if not timestamp:
        return pads.field(column) == pa.scalar(day, type=pa.date32())
    start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
    return (pads.field(column) >= utc_scalar(start)) & (pads.field(column) < utc_scalar(start + timedelta(days=1)))


def read_frame(settings: Settings, spec: TableSpec, *, columns: Sequence[str],
               where: pads.Expression | None = None) -> pd.DataFrame:
    """The named columns of the table's rows matching ``where`` (all rows when None), as pandas."""
    table = open_dataset(settings, spec).to_table(columns=list(columns), filter=where)
    logger.debug("read %d rows of %s", table.num_rows, spec.name)
    return table.to_pandas()


def count_rows(settings: Settings, spec: TableSpec, *, where: pads.Expression | None = None) -> int:
    """How many rows of the table match ``where`` (only the filter's columns are read)."""
    return int(open_dataset(settings, spec).count_rows(filter=where))


def distinct_values(settings: Settings, spec: TableSpec, column: str) -> list[str]:
    """Every distinct non-null value of a column (the keys of a dimension)."""
    import pyarrow.compute as pc

    values = open_dataset(settings, spec).to_table(columns=[column]).column(column)
    return [v for v in pc.unique(values).to_pylist() if v is not None]

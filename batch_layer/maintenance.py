"""Table maintenance: compact every declared Delta table (OPTIMIZE) and delete the files no version needs (VACUUM).

Streaming bronze appends a few files per micro-batch, and every ``replaceWhere`` rebuild of a silver hour, a
fact date or a mart date leaves the replaced files behind for time travel. The daily maintenance asset runs
:func:`maintain_tables`: for each table of :func:`maintained_tables` that exists, bin-packing compaction
(``DeltaTable.optimize().executeCompaction()``, rows unchanged) and then ``vacuum(retention hours)`` with the
retention of the settings. Delta refuses a retention under its 168-hour safety check; the settings refuse it
too unless ``delta_vacuum_allow_short_retention`` is set, and only then is Delta's check turned off, for the
vacuum alone.

The pure part (which tables, what a run reports) is apart from the Spark calls so that it is unit-tested.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from warehouse_models.marts import MART_TABLES
from warehouse_models.settings import DELTA_RETENTION_CHECK_HOURS
from warehouse_models.tables import ALL_TABLES, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"
"""Delta's switch for the safety check that refuses a VACUUM retention under the table's retention duration."""


# --- pure: which tables, what to report -------------------------------------------------------------------------


def maintained_tables(specs: Iterable[TableSpec] | None = None) -> tuple[TableSpec, ...]:
    """Every Delta table the project declares (bronze, silver, gold star schema, marts), each once, in order."""
    by_name: dict[str, TableSpec] = {}
    for spec in specs if specs is not None else (*ALL_TABLES, *MART_TABLES):
        by_name.setdefault(spec.name, spec)
    return tuple(by_name.values())


def needs_retention_check_off(retention_hours: float) -> bool:
    """True when a vacuum with this retention only runs with Delta's retention safety check turned off."""
    return retention_hours < DELTA_RETENTION_CHECK_HOURS


@dataclass(frozen=True)
class TableMaintenance:
    """What maintenance did to one table: live files and bytes before and after, files compacted and vacuumed."""

    table: str
    files_before: int = 0
    bytes_before: int = 0
    files_after: int = 0
    bytes_after: int = 0
    files_compacted: int = 0
    """Small files OPTIMIZE replaced (they stay on storage, unreferenced, until a vacuum deletes them)."""
    files_written: int = 0
    """Files OPTIMIZE wrote in their place."""
    files_vacuumed: int = 0
    """Files VACUUM deleted (unreferenced and older than the retention)."""
    optimize_seconds: float = 0.0
    vacuum_seconds: float = 0.0
    skipped: str | None = None
    """Why the table was left alone (e.g. not created yet); None when it was maintained."""

    @property
    def seconds(self) -> float:
        return round(self.optimize_seconds + self.vacuum_seconds, 3)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON values, with the total seconds."""
        return {**asdict(self), "seconds": self.seconds}


def skipped(table: str, reason: str) -> TableMaintenance:
    """The report of a table left alone, with the reason."""
    return TableMaintenance(table, skipped=reason)


def totals(reports: Sequence[TableMaintenance]) -> dict[str, float | int]:
    """Sums over the maintained tables (skipped ones count only in ``tables_skipped``)."""
    done = [r for r in reports if r.skipped is None]
    return {
        "tables_maintained": len(done),
        "tables_skipped": len(reports) - len(done),
        "files_before": sum(r.files_before for r in done),
        "files_after": sum(r.files_after for r in done),
        "bytes_before": sum(r.bytes_before for r in done),
        "bytes_after": sum(r.bytes_after for r in done),
        "files_compacted": sum(r.files_compacted for r in done),
        "files_vacuumed": sum(r.files_vacuumed for r in done),
        "seconds": round(sum(r.seconds for r in done), 3),
    }


def _mib(value: int) -> str:
    return f"{value / 1024**2:,.1f}"


def report_markdown(reports: Sequence[TableMaintenance]) -> str:
    """A markdown table of the per-table reports (what the Dagster UI shows)."""
    lines = ["| table | files before | files after | MiB before | MiB after | compacted | vacuumed | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in reports:
        if r.skipped is not None:
            lines.append(f"| {r.table} | {r.skipped} | | | | | | |")
            continue
        lines.append(f"| {r.table} | {r.files_before} | {r.files_after} | {_mib(r.bytes_before)} | "
                     f"{_mib(r.bytes_after)} | {r.files_compacted} | {r.files_vacuumed} | {r.seconds:.1f} |")
    return "\n".join(lines)


# --- Spark and Delta ---------------------------------------------------------------------------------------------


def live_files(spark: SparkSession, path: str) -> tuple[int, int]:
    """Data files and bytes the table's current version references (``DESCRIBE DETAIL``)."""
    from delta.tables import DeltaTable

    detail = DeltaTable.forPath(spark, path).detail().select("numFiles", "sizeInBytes").first()
    assert detail is not None, "DESCRIBE DETAIL returns one row"
    return int(detail["numFiles"] or 0), int(detail["sizeInBytes"] or 0)


def _sql_path(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def vacuum(spark: SparkSession, path: str, *, retention_hours: float, allow_short_retention: bool) -> int:
    """VACUUM the table with the retention and return how many files it deleted.

    The files are those a dry run lists just before; a short retention turns Delta's safety check off for this
    vacuum only (and puts the session's setting back), and only when ``allow_short_retention`` says so.
    """
    from delta.tables import DeltaTable

    short = needs_retention_check_off(retention_hours)
    if short and not allow_short_retention:
        raise ValueError(f"a VACUUM retention of {retention_hours:g} hours is under Delta's "
                         f"{DELTA_RETENTION_CHECK_HOURS:g}-hour safety check; set "
                         "delta_vacuum_allow_short_retention to allow it")
    previous = spark.conf.get(RETENTION_CHECK_CONF, "true") or "true"
    if short:
        spark.conf.set(RETENTION_CHECK_CONF, "false")
    try:
        doomed = spark.sql(f"VACUUM {_sql_path(path)} RETAIN {retention_hours:g} HOURS DRY RUN").count()
        DeltaTable.forPath(spark, path).vacuum(retention_hours)
    finally:
        spark.conf.set(RETENTION_CHECK_CONF, previous)
    return int(doomed)


def maintain_table(spark: SparkSession, settings: Settings, spec: TableSpec) -> TableMaintenance:
    """OPTIMIZE (bin-packing compaction) then VACUUM one table; a table not created yet is skipped."""
    from delta.tables import DeltaTable

    path = spec.path(settings.delta_root_uri)
    if not DeltaTable.isDeltaTable(spark, path):
        return skipped(spec.name, "not created yet")
    files_before, bytes_before = live_files(spark, path)
    started = time.monotonic()
    compaction = DeltaTable.forPath(spark, path).optimize().executeCompaction().select("metrics").first()
    assert compaction is not None, "OPTIMIZE returns one row of metrics"
    metrics = compaction["metrics"]
    optimize_seconds = round(time.monotonic() - started, 3)
    files_after, bytes_after = live_files(spark, path)
    started = time.monotonic()
    vacuumed = vacuum(spark, path, retention_hours=settings.delta_vacuum_retention_hours,
                      allow_short_retention=settings.delta_vacuum_allow_short_retention)
    report = TableMaintenance(
        spec.name, files_before=files_before, bytes_before=bytes_before, files_after=files_after,
        bytes_after=bytes_after, files_compacted=int(metrics["numFilesRemoved"] or 0),
        files_written=int(metrics["numFilesAdded"] or 0), files_vacuumed=vacuumed,
        optimize_seconds=optimize_seconds, vacuum_seconds=round(time.monotonic() - started, 3),
    )
    logger.info("%s: %d -> %d files (%d compacted), %d vacuumed, %.1f s", spec.name, files_before, files_after,
                report.files_compacted, vacuumed, report.seconds)
    return report


def maintain_tables(spark: SparkSession, settings: Settings, *, specs: Sequence[TableSpec] | None = None,
                    on_table: Callable[[int, int, TableMaintenance], None] | None = None) -> list[TableMaintenance]:
    """Maintain every declared table (or ``specs``) in turn; ``on_table(done, total, report)`` after each."""
    tables = maintained_tables(specs)
    reports: list[TableMaintenance] = []
    for number, spec in enumerate(tables, start=1):
        reports.append(maintain_table(spark, settings, spec))
        if on_table is not None:
            on_table(number, len(tables), reports[-1])
    return reports

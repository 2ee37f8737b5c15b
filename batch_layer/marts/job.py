"""The marts job: read the gold star schema, compute every mart for some dates, overwrite their partitions.

For dates ``D1..Dn`` it reads the fact rows of ``D1 - 1 day`` to ``Dn + 1 day``: a session is reported on the
day it started but its later events (positions, heartbeats after midnight) and the sessions still streaming
from the day before (concurrency) belong to it. Only the requested dates are written, each one whole
(``replaceWhere`` on the partition column; the QoE mart's hours of those dates), so a re-run replaces what
the last run wrote and a date whose rows vanished ends up empty rather than stale.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from batch_layer.delta_tables import create_table
from batch_layer.marts.concurrency_violations import mart_concurrency_violations
from batch_layer.marts.content_performance import mart_content_performance
from batch_layer.marts.ctr_daily import mart_ctr_daily, missing_columns
from batch_layer.marts.qoe_hourly import mart_qoe_hourly
from batch_layer.marts.recs_variants import mart_recs_variants_daily
from batch_layer.marts.segments import mart_segments
from batch_layer.marts.session_length import mart_session_length
from batch_layer.marts.sessions import conform, fact_sessions
from batch_layer.marts.user_engagement_daily import mart_user_engagement_daily
from batch_layer.silver.job import sized_for_readers
from warehouse_models.marts import (
    MART_CONCURRENCY_VIOLATIONS,
    MART_CONTENT_PERFORMANCE,
    MART_CTR_DAILY,
    MART_QOE_HOURLY,
    MART_RECS_VARIANTS_DAILY,
    MART_SEGMENTS,
    MART_SESSION_LENGTH,
    MART_TABLES,
    MART_USER_ENGAGEMENT_DAILY,
)
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldInputs:
    """The frames the marts are computed from."""

    fact: DataFrame
    dim_content: DataFrame
    dim_users: DataFrame
    settings: Settings
    sessions: DataFrame | None = None
    """:func:`batch_layer.marts.sessions.fact_sessions` of ``fact``, when computed once for every mart."""


MART_TRANSFORMS: dict[str, Callable[[GoldInputs], DataFrame]] = {
    MART_USER_ENGAGEMENT_DAILY.name: lambda g: mart_user_engagement_daily(g.fact, per_session=g.sessions),
    MART_CONTENT_PERFORMANCE.name: lambda g: mart_content_performance(g.fact, g.dim_content, per_session=g.sessions),
    MART_QOE_HOURLY.name: lambda g: mart_qoe_hourly(g.fact, g.settings),
    MART_CTR_DAILY.name: lambda g: mart_ctr_daily(g.fact),
    MART_SESSION_LENGTH.name: lambda g: mart_session_length(g.fact, per_session=g.sessions),
    MART_SEGMENTS.name: lambda g: mart_segments(g.fact, per_session=g.sessions),
    MART_CONCURRENCY_VIOLATIONS.name:
        lambda g: mart_concurrency_violations(g.fact, g.dim_users, per_session=g.sessions),
    MART_RECS_VARIANTS_DAILY.name: lambda g: mart_recs_variants_daily(g.fact, g.settings),
}
"""Mart name -> its pure transform over the gold inputs."""


@dataclass
class MartsBuild:
    """What a build wrote: rows per mart (over the requested dates), marts skipped with the reason, timings."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _sql_date(day: date) -> str:
    return f"DATE'{day.isoformat()}'"


def partition_predicate(spec: TableSpec, dates: Iterable[date]) -> str:
    """The ``replaceWhere`` predicate selecting the partitions of ``dates`` (on the spec's partition column)."""
    days = sorted(set(dates))
    if spec.partition_by == ("event_date",):
        return f"event_date IN ({', '.join(_sql_date(d) for d in days)})"
    if spec.partition_by == ("event_hour",):
        ranges = [f"(event_hour >= TIMESTAMP'{d.isoformat()} 00:00:00' AND "
                  f"event_hour < TIMESTAMP'{(d + timedelta(days=1)).isoformat()} 00:00:00')" for d in days]
        return " OR ".join(ranges)
    raise ValueError(f"{spec.name}: no date predicate for partitioning {spec.partition_by}")


MART_FACT_COLUMNS: tuple[str, ...] = (
    "event_date", "event_timestamp", "event_type", "user_id", "account_id", "session_id", "content_id", "device_type",
    "country", "position_seconds", "watch_seconds", "player_state", "bitrate_kbps", "previous_bitrate_kbps",
    "startup_ms", "stall_ms", "error_code", "error_fatal", "rail_id", "button_id", "rec_variant", "completion_pct",
)
"""The fact columns the marts read (a mart that needs another one fails on an unknown column in the tests)."""

HISTORY_LOOKBACK = 20
"""Commits searched for a write's own (by its ``userMetadata`` token) when reading its row count."""


def ensure_table(spark: SparkSession, spec: TableSpec, path: str) -> None:
    """Create the mart's table from its spec (:func:`batch_layer.delta_tables.create_table`) if it is missing."""
    create_table(spark, spec, path)


def write_partitions(spark: SparkSession, spec: TableSpec, rows: DataFrame, *, dates: Sequence[date],
                     delta_root: str) -> int:
    """Overwrite the partitions of ``dates`` with ``rows`` (already limited to those dates), one file per partition
    (:func:`batch_layer.silver.job.sized_for_readers`); return the row count.

    The count is the one Delta recorded for the commit (found by a token in its ``userMetadata``): counting the
    frame as well would compute the mart a second time, or cache it, a Spark job per mart for a figure the write
    already knows.
    """
    path = spec.path(delta_root)
    ensure_table(spark, spec, path)
    predicate = partition_predicate(spec, dates)
    token = f"reelytics marts {uuid.uuid4().hex}"
    (sized_for_readers(conform(rows, spec).write.format("delta")).mode("overwrite")
     .option("replaceWhere", predicate)
     .option("userMetadata", token)
     .save(path))
    return written_rows(spark, path, token, predicate)


def written_rows(spark: SparkSession, path: str, token: str, predicate: str) -> int:
    """Rows the commit tagged ``token`` wrote, from its operation metrics; if the table keeps no metrics, the rows
    now in the partitions of ``predicate``."""
    from delta.tables import DeltaTable

    # A few commits back: another partition's writer may have committed right after this one.
    for commit in DeltaTable.forPath(spark, path).history(HISTORY_LOOKBACK).collect():
        if commit["userMetadata"] == token:
            metrics = commit["operationMetrics"] or {}
            if "numOutputRows" in metrics:
                return int(metrics["numOutputRows"])
            break
    return spark.read.format("delta").load(path).where(predicate).count()


def read_gold(spark: SparkSession, settings: Settings, *, dates: Sequence[date]) -> GoldInputs:
    """The fact rows of the dates and one day either side, and the dims (whole)."""
    from pyspark.sql import functions as F

    root = settings.delta_root_uri
    first, last = min(dates) - timedelta(days=1), max(dates) + timedelta(days=1)
    fact = (spark.read.format("delta").load(FACT_STREAM_EVENTS.path(root))
            .where(F.col("event_date").between(F.lit(first), F.lit(last))))
    return GoldInputs(
        fact=fact,
        dim_content=spark.read.format("delta").load(DIM_CONTENT.path(root)),
        dim_users=spark.read.format("delta").load(DIM_USERS.path(root)),
        settings=settings,
    )


def build_marts(spark: SparkSession, settings: Settings, *, dates: Sequence[date],
                marts: Sequence[str] | None = None) -> MartsBuild:
    """Compute the marts for ``dates`` from the gold tables and overwrite those partitions.

    Args:
        spark: a session with Delta's extension.
        settings: the Delta root, and the speed layer's lateness and heartbeat timeout (for QoE).
        dates: the event dates to (re)build.
        marts: names of the marts to build (default: all of :data:`warehouse_models.marts.MART_TABLES`).

    Returns:
        Rows written per mart, the marts skipped and why (the CTR mart while the fact table has no
        ``rail_id``/``button_id``), and seconds per mart.
    """
    from pyspark.sql import functions as F

    if not dates:
        raise ValueError("build_marts needs at least one date")
    specs = [spec for spec in MART_TABLES if marts is None or spec.name in marts]
    unknown = set(marts or ()) - {spec.name for spec in specs}
    if unknown:
        raise ValueError(f"unknown marts {sorted(unknown)}")
    began = time.monotonic()
    gold = read_gold(spark, settings, dates=dates)
    # Every mart reads the same few days of facts; reading the Delta files once is the dearest part saved. Only the
    # columns the marts read are kept: building the cache of all 37 was most of the first mart's time.
    fact = gold.fact.select(*MART_FACT_COLUMNS).cache()
    # Five marts start from one row per session; grouping the facts by session once saves four of those passes.
    sessions = fact_sessions(fact).cache()
    gold = GoldInputs(fact, gold.dim_content, gold.dim_users, settings, sessions)
    result = MartsBuild()
    wanted = sorted(set(dates))
    todo: list[TableSpec] = []
    for spec in specs:
        if spec is MART_CTR_DAILY and missing_columns(fact):
            result.skipped[spec.name] = f"fact_stream_events has no {missing_columns(fact)}"
            logger.warning("%s skipped: %s", spec.name, result.skipped[spec.name])
        else:
            todo.append(spec)

    def build_one(spec: TableSpec) -> None:
        started = time.monotonic()
        rows = MART_TRANSFORMS[spec.name](gold).where(F.col("event_date").isin(wanted))
        result.rows[spec.name] = write_partitions(spark, spec, rows, dates=wanted, delta_root=settings.delta_root_uri)
        result.seconds[spec.name] = round(time.monotonic() - started, 3)
        logger.info("%s: %d rows for %s in %.1f s", spec.name, result.rows[spec.name],
                    ", ".join(d.isoformat() for d in wanted), result.seconds[spec.name])

    try:
        # Both caches are filled by one job before the marts start, so concurrent marts read them, not the files.
        sessions.count()
        logger.info("marts: facts and sessions of %s to %s cached in %.1f s", min(wanted) - timedelta(days=1),
                    max(wanted) + timedelta(days=1), time.monotonic() - began)
        run_concurrently(build_one, todo, workers=settings.marts_concurrent_writes)
    finally:
        sessions.unpersist()
        fact.unpersist()
    return result


def run_concurrently(build: Callable[[TableSpec], None], specs: Sequence[TableSpec], *, workers: int) -> None:
    """``build`` each spec, up to ``workers`` at once (Spark takes jobs from several driver threads); every build
    runs even when one fails, then the first failure (in ``specs`` order) is raised, naming the others."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(specs))), thread_name_prefix="mart") as pool:
        futures = [(spec, pool.submit(build, spec)) for spec in specs]
    failed = [(spec, future.exception()) for spec, future in futures if future.exception() is not None]
    if failed:
        for spec, error in failed:
            logger.error("%s failed: %s", spec.name, error)
        first_spec, first_error = failed[0]
        raise RuntimeError(f"{len(failed)} of {len(specs)} marts failed ({', '.join(s.name for s, _ in failed)}); "
                           f"first: {first_spec.name}: {first_error}") from first_error

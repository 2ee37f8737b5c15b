"""The gold job: the star schema's Delta tables, rebuilt from silver (facts) and the bronze catalog (dims).

``fact_stream_events`` is partitioned by event date; :func:`build_fact` overwrites exactly the dates it is
given (:func:`dates_of_hours` turns the event hours a silver build rewrote into those dates) with
``replaceWhere``, one file per date (optimized writes, :func:`batch_layer.silver.job.sized_for_readers`). The
dimensions are small and rebuilt whole from every catalog record on each run
(:func:`build_dims`), so a re-run writes the same rows, and a late catalog record is simply in the next build.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from batch_layer.gold.dim_content import dim_content
from batch_layer.gold.dim_users import dim_users
from batch_layer.gold.fact_stream_events import fact_stream_events
from batch_layer.silver.job import ensure_table, overwrite_partitions, read_table, sized_for_readers
from warehouse_models.tables import BRONZE_CATALOG, DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, SILVER_EVENTS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)


def dates_of_hours(hours: Iterable[datetime]) -> set[date]:
    """The UTC event dates that hold the given event hours (the fact partitions a silver build touched)."""
    return {h.astimezone(timezone.utc).date() for h in hours}


def build_fact(spark: SparkSession, settings: Settings, *, dates: Iterable[date]) -> dict[str, int]:
    """Rebuild the given event-date partitions of ``fact_stream_events`` from silver; return counts for metadata.

    Returns:
        ``dates`` rebuilt and fact ``rows`` now in them.
    """
    from pyspark.sql import functions as F

    wanted = sorted(set(dates))
    path = ensure_table(spark, settings, FACT_STREAM_EVENTS)
    if not wanted:
        return {"dates": 0, "rows": 0}
    # Filtering on silver's partition column (event_hour) lets Delta skip the other hours' files.
    in_dates = F.lit(False)
    for day in wanted:
        start = datetime.combine(day, time(0), tzinfo=timezone.utc)
        in_dates = in_dates | ((F.col("event_hour") >= F.lit(start))
                               & (F.col("event_hour") < F.lit(start + timedelta(days=1))))
    silver = read_table(spark, settings, SILVER_EVENTS).where(in_dates)
    overwrite_partitions(fact_stream_events(silver), FACT_STREAM_EVENTS, path, values=wanted, for_readers=True)
    rows = spark.read.format("delta").load(path).where(F.col("event_date").isin(*[F.lit(d) for d in wanted])).count()
    counts = {"dates": len(wanted), "rows": rows}
    logger.info("fact_stream_events rebuilt %s", counts)
    return counts


def build_dims(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """Rebuild ``dim_content`` and ``dim_users`` whole from every bronze catalog record; return counts.

    Returns:
        ``content_rows``, ``user_rows`` (versions) and ``current_users``.
    """
    from pyspark.sql import functions as F

    catalog = read_table(spark, settings, BRONZE_CATALOG)
    counts: dict[str, int] = {}
    for key, spec, frame in (("content_rows", DIM_CONTENT, dim_content(catalog)),
                             ("user_rows", DIM_USERS, dim_users(catalog))):
        path = ensure_table(spark, settings, spec)
        sized_for_readers(frame.write.format("delta").mode("overwrite")).save(path)
        counts[key] = spark.read.format("delta").load(path).count()
    counts["current_users"] = (
        spark.read.format("delta").load(DIM_USERS.path(settings.delta_root_uri)).where(F.col("is_current")).count()
    )
    logger.info("dimensions rebuilt %s", counts)
    return counts

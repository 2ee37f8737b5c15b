"""The reconciliation job: for each closed hour still in the speed buckets' TTL, the batch result of the hour
against the speed layer's buckets, per additive view metric, written to the ``reconciliation`` Delta table.

The batch side uses the same functions as the published batch views (and so the speed views' own transforms)
on the fact rows of the hour: engagement per user, CTR per rail/button, QoE per slice (computed on the fact
rows of the day before to the day after, so sessions are judged as the stream judges them). The speed side
reads the buckets with the speed views' readers (:mod:`batch_layer.reconcile.speed`). Each reconciled hour's
rows are replaced whole, so a re-run leaves one row per (hour, view, metric).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from batch_layer.publish.ctr import ctr_totals
from batch_layer.publish.qoe import qoe_minutes, qoe_totals
from batch_layer.publish.user_totals import user_totals
from batch_layer.reconcile import speed
from batch_layer.reconcile.drift import ViewTotals, drift_rows, hours_to_reconcile
from batch_layer.silver.job import ensure_table, overwrite_partitions, read_table
from warehouse_models.metrics.ctr import COUNTS
from warehouse_models.metrics.engagement import METRICS
from warehouse_models.metrics.qoe import QOE_FIELDS
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS
from warehouse_models.tables import FACT_STREAM_EVENTS, RECONCILIATION

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame, SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

_HOUR = timedelta(hours=1)


def _pair(key: str) -> tuple[str, str]:
    """A ``rail:button`` key of the batch CTR view as (rail, button)."""
    rail, button = key.split(":", 1)
    return rail, button


def settle_seconds(settings: Settings) -> int:
    """How long after an hour ends its speed buckets may still change (late events, session timeouts)."""
    return settings.speed_allowed_lateness_seconds + settings.speed_heartbeat_timeout_seconds + 60


def fact_hours(fact: DataFrame, candidates: Iterable[datetime]) -> list[datetime]:
    """The candidate hours the fact rows have events in (an hour the batch layer has not built is not compared)."""
    from pyspark.sql import functions as F

    wanted = sorted(set(candidates))
    if not wanted:
        return []
    found = (fact.where((F.col("event_timestamp") >= F.lit(wanted[0]))
                        & (F.col("event_timestamp") < F.lit(wanted[-1] + _HOUR)))
             .select(F.date_trunc("hour", "event_timestamp").alias("hour")).distinct().collect())
    have = {row["hour"].astimezone(timezone.utc) for row in found}
    return [h for h in wanted if h in have]


def _totals(frame: DataFrame, view: str, key_columns: tuple[str, ...], metrics: tuple[str, ...]) -> ViewTotals:
    """A batch frame's metrics summed per key (the key columns joined with ``:``)."""
    values: dict[str, dict[str, float]] = {}
    for row in frame.toLocalIterator():
        key = ":".join(str(row[c]) for c in key_columns)
        sums = values.setdefault(key, dict.fromkeys(metrics, 0.0))
        for metric in metrics:
            sums[metric] += float(row[metric] or 0)
    return ViewTotals(view, metrics, values)


def reconcile(spark: SparkSession, settings: Settings, *, hours: Iterable[datetime] | None = None,
              now: datetime | None = None, client: redis.Redis | None = None) -> list[dict[str, Any]]:
    """Compare both layers for the given closed hours (default: every settled hour still in the buckets' TTL
    that the fact table has events in), replace those hours' rows of the ``reconciliation`` table, return them."""
    from pyspark.sql import functions as F

    started = time.monotonic()
    clock = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    redis_client = client if client is not None else settings.redis_client()
    keys = settings.keys
    fact = read_table(spark, settings, FACT_STREAM_EVENTS)
    candidates = sorted(set(hours)) if hours is not None else hours_to_reconcile(
        now=clock, bucket_ttl_seconds=SPEED_BUCKET_TTL_SECONDS, settle_seconds=settle_seconds(settings))
    wanted = fact_hours(fact, candidates)
    path = ensure_table(spark, settings, RECONCILIATION)
    if not wanted:
        logger.info("reconciliation: no built hour among %s", [h.isoformat() for h in candidates])
        return []
    logger.info("reconciling %d hours: %s", len(wanted), ", ".join(h.isoformat() for h in wanted))
    nearby = fact.where((F.col("event_date") >= F.lit((wanted[0] - timedelta(days=1)).date()))
                        & (F.col("event_date") <= F.lit((wanted[-1] + timedelta(days=1)).date()))).cache()
    # Every hour's QoE comes from one pass of the batch transform over the nearby days.
    minutes = qoe_minutes(nearby, settings).cache()
    try:
        scanned = {
            "engagement": speed.bucket_ids(redis_client, keys.user_engagement_bucket, 1),
            "ctr": speed.bucket_ids(redis_client, keys.ctr_bucket, 2),
            "qoe": speed.bucket_ids(redis_client, keys.qoe_bucket, 3),
        }
        batch_qoe: dict[datetime, ViewTotals] = {}
        rows: list[dict[str, Any]] = []
        for hour in wanted:
            end = hour + _HOUR
            batch_engagement = _totals(user_totals(nearby, settings, start=hour, end=end), "engagement",
                                       ("user_id",), METRICS)
            batch_ctr = _totals(ctr_totals(nearby, settings, start=hour, end=end), "ctr",
                                ("rail_id", "button_id"), COUNTS)
            batch_qoe[hour] = _totals(qoe_totals(minutes, start=hour, end=end), "qoe",
                                      ("content_id", "device_type", "country"), QOE_FIELDS)
            users = set(batch_engagement.values) | {ids[0] for ids in speed.ids_in_hour(scanned["engagement"], hour)}
            rail_buttons = {_pair(k) for k in batch_ctr.values} | {(rail, button) for rail, button in
                                                                 speed.ids_in_hour(scanned["ctr"], hour)}
            checked_at = datetime.now(timezone.utc)
            now_epoch = clock.timestamp()
            rows += drift_rows(hour, batch_engagement, speed.engagement(redis_client, keys, users, hour,
                                                                         now=now_epoch), checked_at=checked_at)
            rows += drift_rows(hour, batch_ctr, speed.ctr(redis_client, keys, rail_buttons, hour, now=now_epoch),
                               checked_at=checked_at)
        contents = {k.split(":", 1)[0] for totals in batch_qoe.values() for k in totals.values}
        contents |= {ids[0] for hour in wanted for ids in speed.ids_in_hour(scanned["qoe"], hour)}
        speed_qoe = speed.qoe(redis_client, keys, contents, wanted)
        checked_at = datetime.now(timezone.utc)
        for hour in wanted:
            rows += drift_rows(hour, batch_qoe[hour], speed_qoe[hour], checked_at=checked_at)
    finally:
        minutes.unpersist()
        nearby.unpersist()
    frame = spark.createDataFrame([tuple(r[c] for c in RECONCILIATION.column_names) for r in rows],
                                  RECONCILIATION.spark_ddl())
    overwrite_partitions(frame, RECONCILIATION, path, values=wanted)
    logger.info("reconciliation: %d rows for %d hours in %.1f s", len(rows), len(wanted), time.monotonic() - started)
    return rows

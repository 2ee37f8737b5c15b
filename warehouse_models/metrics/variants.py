"""Recommendation A/B variants: who is in which variant, and each variant's CTR, watch time and completion with
95 % confidence intervals (the definition; the mart, the batch publication and the API use it).

**Assignment.** A user's variant follows from a stable hash of the user id: the first 8 hex digits of
``sha256("<salt>:<user id>")`` modulo 10,000 is the user's bucket, and the variants split the buckets by their
shares in order (``REELYTICS_RECS_VARIANTS``, e.g. ``live=50,batch=50``). The same user is in the same variant in
every process and every day, and a new salt (``REELYTICS_RECS_VARIANT_SALT``) starts a new experiment.
:func:`variant_of` is the Python form, :func:`variant_column` the Spark form of the same rule.

**Figures per variant.**

- CTR on the recommendation rails (:data:`RECOMMENDATION_RAILS`): clicks / impressions of the tiles the apps
  stamped with the variant (``rec_variant`` on the impression or click), with Wilson's 95 % interval;
- watch time per user: mean playing seconds per assigned user who watched at all, with a normal 95 % interval
  (from the sum and the sum of squares of the users' watch seconds);
- completion: completed views / ended views (``completion_pct`` >= 90 on view_end), with Wilson's interval.

CTR is by the stamp (what the variant showed); watch time and completion are by assignment (intention to treat).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from warehouse_models.events import EventType

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn

RECOMMENDATION_RAILS: tuple[str, ...] = ("top_picks",)
"""The rails whose tiles come from the recommendations API (their impressions carry the variant)."""

BUCKETS = 10_000
Z_95 = 1.959964
COMPLETED_PCT = 90.0
"""A view counts as completed from this completion (the marts' completion threshold)."""

TOTALS: tuple[str, ...] = ("impressions", "clicks", "users", "watch_seconds", "watch_seconds_sq", "views_ended",
                           "views_completed")
"""The additive sums a variant's figures come from."""


def parse_variants(text: str) -> tuple[tuple[str, int], ...]:
    """``"live=50,batch=50"`` -> ``(("live", 5000), ("batch", 5000))`` in buckets of :data:`BUCKETS`.

    Raises:
        ValueError: a malformed entry, a repeated name, or shares that do not add up to 100.
    """
    out: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, share = part.partition("=")
        name = name.strip()
        try:
            percent = float(share)
        except ValueError:
            raise ValueError(f"variant {part!r}: write name=percent, e.g. live=50") from None
        if not name or not name.replace("_", "").isalnum() or percent <= 0:
            raise ValueError(f"variant {part!r}: a name of letters, digits or _ and a positive percent")
        out.append((name, round(percent * BUCKETS / 100)))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"variants {text!r}: a name appears twice")
    if not out or sum(b for _, b in out) != BUCKETS:
        raise ValueError(f"variants {text!r}: the percents must add up to 100")
    return tuple(out)


def bucket_of(user_id: str, salt: str) -> int:
    return int(hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:8], 16) % BUCKETS


def variant_of(user_id: str, variants: Sequence[tuple[str, int]], salt: str) -> str:
    bucket = bucket_of(user_id, salt)
    edge = 0
    for name, buckets in variants:
        edge += buckets
        if bucket < edge:
            return name
    return variants[-1][0]


def variant_column(user_id: SparkColumn, variants: Sequence[tuple[str, int]], salt: str) -> SparkColumn:
    """:func:`variant_of` as a Spark column."""
    from pyspark.sql import functions as F

    digest = F.sha2(F.concat(F.lit(f"{salt}:"), user_id), 256)
    bucket = F.conv(F.substring(digest, 1, 8), 16, 10).cast("long") % BUCKETS
    edge = 0
    expr = None
    for name, buckets in variants:
        edge += buckets
        expr = (F.when(bucket < edge, F.lit(name)) if expr is None else expr.when(bucket < edge, F.lit(name)))
    assert expr is not None
    return expr.otherwise(F.lit(variants[-1][0]))


def wilson(successes: float, n: float) -> tuple[float | None, float | None, float | None]:
    """(rate, low, high): the rate and Wilson's 95 % score interval; Nones without trials."""
    if n <= 0:
        return None, None, None
    p = min(max(successes / n, 0.0), 1.0)  # more clicks than impressions (a double click) counts as all
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(total: float, total_sq: float, n: float) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high): the mean of n values from their sum and sum of squares, with a normal 95 % interval."""
    if n <= 0:
        return None, None, None
    mean = total / n
    if n < 2:
        return mean, None, None
    variance = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    half = Z_95 * math.sqrt(variance / n)
    return mean, mean - half, mean + half


def figures(totals: Mapping[str, float]) -> dict[str, float | None]:
    """A variant's figures from its :data:`TOTALS`."""
    ctr, ctr_low, ctr_high = wilson(totals.get("clicks", 0), totals.get("impressions", 0))
    watch, watch_low, watch_high = mean_interval(totals.get("watch_seconds", 0), totals.get("watch_seconds_sq", 0),
                                                 totals.get("users", 0))
    done, done_low, done_high = wilson(totals.get("views_completed", 0), totals.get("views_ended", 0))
    return {"ctr": ctr, "ctr_low": ctr_low, "ctr_high": ctr_high,
            "watch_seconds_per_user": watch, "watch_seconds_per_user_low": watch_low,
            "watch_seconds_per_user_high": watch_high,
            "completion_rate": done, "completion_rate_low": done_low, "completion_rate_high": done_high}


def variant_totals(fact: DataFrame, variants: Sequence[tuple[str, int]], salt: str, *,
                   keys: Sequence[str] = ()) -> DataFrame:
    """Fact rows -> one row per variant (and ``keys``, e.g. ``event_date``) with the :data:`TOTALS`.

    Two shuffles: the users' watching and ended views grouped per user (the variant hashed once per user, not per
    event), then those rows and the stamped tiles grouped per variant together."""
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    tile = (kind.isin(EventType.IMPRESSION.value, EventType.CLICK.value)
            & F.col("rail_id").isin(*RECOMMENDATION_RAILS) & F.col("rec_variant").isNotNull())
    ended = kind == EventType.VIEW_END.value
    zero_long, zero_double = F.lit(0).cast("long"), F.lit(0.0).cast("double")
    stamped = fact.where(tile).select(
        *keys, F.col("rec_variant").alias("variant"),
        F.when(kind == EventType.IMPRESSION.value, 1).otherwise(0).cast("long").alias("impressions"),
        F.when(kind == EventType.CLICK.value, 1).otherwise(0).cast("long").alias("clicks"),
        zero_long.alias("users"), zero_double.alias("watch_seconds"), zero_double.alias("watch_seconds_sq"),
        zero_long.alias("views_ended"), zero_long.alias("views_completed"))
    per_user = (fact.where(F.col("user_id").isNotNull() & ((F.col("watch_seconds") > 0) | ended))
                .groupBy(*keys, "user_id")
                .agg(F.sum(F.when(F.col("watch_seconds") > 0, F.col("watch_seconds"))).alias("w"),
                     F.count(F.when(ended, 1)).alias("views_ended"),
                     F.count(F.when(ended & (F.col("completion_pct") >= COMPLETED_PCT), 1)).alias("views_completed"))
                .select(*keys, variant_column(F.col("user_id"), variants, salt).alias("variant"),
                        zero_long.alias("impressions"), zero_long.alias("clicks"),
                        F.when(F.col("w") > 0, 1).otherwise(0).cast("long").alias("users"),
                        F.coalesce(F.col("w"), F.lit(0.0)).cast("double").alias("watch_seconds"),
                        (F.coalesce(F.col("w"), F.lit(0.0)) ** 2).cast("double").alias("watch_seconds_sq"),
                        F.col("views_ended").cast("long"), F.col("views_completed").cast("long")))
    return (stamped.unionByName(per_user).groupBy(*keys, "variant")
            .agg(*(F.sum(c).cast("double" if c.startswith("watch") else "long").alias(c) for c in TOTALS)))


def interval_columns(totals: DataFrame) -> DataFrame:
    """:func:`figures` as Spark columns over a frame of :data:`TOTALS` (the mart's)."""
    from pyspark.sql import functions as F

    def wilson_cols(s: str, n: str, name: str) -> dict[str, SparkColumn]:
        ns, nn = F.col(s).cast("double"), F.col(n).cast("double")
        p = F.least(F.greatest(ns / nn, F.lit(0.0)), F.lit(1.0))
        z2 = Z_95 * Z_95
        centre = (p + F.lit(z2) / (2 * nn)) / (1 + F.lit(z2) / nn)
        half = F.lit(Z_95) * F.sqrt(p * (1 - p) / nn + F.lit(z2) / (4 * nn * nn)) / (1 + F.lit(z2) / nn)
        ok = nn > 0
        return {name: F.when(ok, p), f"{name}_low": F.when(ok, F.greatest(F.lit(0.0), centre - half)),
                f"{name}_high": F.when(ok, F.least(F.lit(1.0), centre + half))}

    n = F.col("users").cast("double")
    mean = F.col("watch_seconds") / n
    variance = F.greatest(F.lit(0.0), (F.col("watch_seconds_sq") - n * mean * mean) / (n - 1))
    half = F.lit(Z_95) * F.sqrt(variance / n)
    return totals.withColumns({
        **wilson_cols("clicks", "impressions", "ctr"),
        "watch_seconds_per_user": F.when(n > 0, mean),
        "watch_seconds_per_user_low": F.when(n > 1, mean - half),
        "watch_seconds_per_user_high": F.when(n > 1, mean + half),
        **wilson_cols("views_completed", "views_ended", "completion_rate"),
    })


def window(fact: DataFrame, *, start: datetime, end: datetime) -> DataFrame:
    from pyspark.sql import functions as F

    return fact.where((F.col("event_timestamp") >= F.lit(start)) & (F.col("event_timestamp") < F.lit(end)))


def totals_from_hash(fields: Mapping[Any, Any]) -> dict[str, dict[str, float]]:
    """A published variants hash (``<variant>:<total>`` -> value) -> variant -> totals."""
    out: dict[str, dict[str, float]] = {}
    for field, value in fields.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        variant, _, total = name.rpartition(":")
        if total in TOTALS and variant:
            out.setdefault(variant, {})[total] = float(value)
    return out

"""Recommendation variants in Spark: the hash column equals the Python assignment, and the mart's totals and
intervals equal what the rows say (counted here) through the Python formulas."""

from __future__ import annotations

import pytest

from batch_layer.marts.recs_variants import mart_recs_variants_daily
from tests.spark.test_marts import SETTINGS, D, collect, fact_row, frame
from warehouse_models.marts import MART_RECS_VARIANTS_DAILY
from warehouse_models.metrics.variants import figures, parse_variants, variant_column, variant_of

VARIANTS = parse_variants(SETTINGS.recs_variants)
SALT = SETTINGS.recs_variant_salt


def test_the_spark_assignment_is_the_python_one(spark):
    from pyspark.sql import functions as F

    users = [f"user-{i:05d}-{i % 3}" for i in range(400)]
    got = dict(spark.createDataFrame([(u,) for u in users], "user_id string")
               .select("user_id", variant_column(F.col("user_id"), VARIANTS, SALT).alias("v")).collect())
    assert got == {u: variant_of(u, VARIANTS, SALT) for u in users}
    assert set(got.values()) == {"live", "batch"}


def test_the_mart_counts_stamped_tiles_and_assigned_users(spark):
    users = [f"user-{i:03d}-0" for i in range(40)]
    rows = []
    for i, user in enumerate(users):
        variant = variant_of(user, VARIANTS, SALT)
        for slot in range(3):
            rows.append(fact_row("impression", i, user=user, content=f"vod-{slot}", rail_id="top_picks",
                                 button_id="tile", rec_variant=variant))
        if i % 4 == 0:
            rows.append(fact_row("click", i + 0.5, user=user, content="vod-0", rail_id="top_picks", button_id="tile",
                                 rec_variant=variant))
        rows.append(fact_row("impression", i, user=user, content="vod-9", rail_id="trending_now", button_id="tile"))
        rows.append(fact_row("heartbeat", i + 1, user=user, session=f"s{i}", state="playing", watch=10.0 * (i % 5)))
        rows.append(fact_row("view_end", i + 2, user=user, session=f"s{i}", completion_pct=95.0 if i % 3 else 10.0))
    got = {r["variant"]: r for r in collect(mart_recs_variants_daily(frame(spark, rows), SETTINGS),
                                            MART_RECS_VARIANTS_DAILY, "variant")}
    for variant in ("live", "batch"):
        mine = [i for i, u in enumerate(users) if variant_of(u, VARIANTS, SALT) == variant]
        watched = [10.0 * (i % 5) for i in mine if i % 5]
        totals = {"impressions": 3 * len(mine), "clicks": sum(1 for i in mine if i % 4 == 0), "users": len(watched),
                  "watch_seconds": sum(watched), "watch_seconds_sq": sum(w * w for w in watched),
                  "views_ended": len(mine), "views_completed": sum(1 for i in mine if i % 3)}
        row = got[variant]
        assert {k: row[k] for k in totals} == totals, variant
        assert row["event_date"] == D
        for name, value in figures(totals).items():
            assert row[name] == pytest.approx(value), (variant, name)

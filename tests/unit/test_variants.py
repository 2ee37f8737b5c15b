"""Recommendation variants: a stable, balanced assignment, and the intervals' formulas on known values."""

from __future__ import annotations

import math

import pytest

from warehouse_models.metrics.variants import (
    BUCKETS,
    figures,
    mean_interval,
    parse_variants,
    totals_from_hash,
    variant_of,
    wilson,
)


def test_variants_parse_into_buckets_and_bad_splits_are_refused():
    assert parse_variants("live=50,batch=50") == (("live", 5000), ("batch", 5000))
    assert parse_variants(" a=10 , b=90 ") == (("a", 1000), ("b", 9000))
    for bad, words in (("a=50,b=40", "add up to 100"), ("a=50,a=50", "appears twice"), ("a", "name=percent"),
                       ("a=-5,b=105", "positive percent"), ("", "add up to 100")):
        with pytest.raises(ValueError, match=words):
            parse_variants(bad)


def test_assignment_is_stable_balanced_and_moves_with_the_salt():
    variants = parse_variants("live=50,batch=50")
    users = [f"user-{i:06d}-0" for i in range(20_000)]
    first = [variant_of(u, variants, "s1") for u in users]
    assert first == [variant_of(u, variants, "s1") for u in users]
    assert abs(first.count("live") / len(users) - 0.5) < 0.02
    other = [variant_of(u, variants, "s2") for u in users]
    assert 0.4 < sum(a != b for a, b in zip(first, other, strict=True)) / len(users) < 0.6
    skewed = [variant_of(u, parse_variants("a=10,b=90"), "s1") for u in users]
    assert abs(skewed.count("a") / len(users) - 0.1) < 0.01
    assert BUCKETS == 10_000


def test_wilson_and_the_mean_interval_match_hand_computed_values():
    rate, low, high = wilson(10, 100)
    assert rate == pytest.approx(0.1)
    assert (low, high) == pytest.approx((0.05523, 0.17437), abs=1e-4)  # the textbook Wilson interval of 10/100
    assert wilson(0, 0) == (None, None, None)
    assert wilson(11, 10)[0] == 1.0  # a double click on one impression: counted as all, never a math error
    assert wilson(0, 50)[1] == 0.0
    values = [10.0, 20.0, 30.0, 40.0]
    mean, low, high = mean_interval(sum(values), sum(v * v for v in values), len(values))
    sd = math.sqrt(sum((v - 25) ** 2 for v in values) / 3)
    assert mean == 25 and (low, high) == pytest.approx((25 - 1.959964 * sd / 2, 25 + 1.959964 * sd / 2))
    assert mean_interval(5.0, 25.0, 1) == (5.0, None, None)


def test_figures_from_a_published_hash():
    totals = totals_from_hash({b"live:impressions": b"200", b"live:clicks": b"10", b"live:users": b"4",
                               b"live:watch_seconds": b"100", b"live:watch_seconds_sq": b"3000",
                               b"live:views_ended": b"8", b"live:views_completed": b"2", b"other": b"1"})
    assert set(totals) == {"live"}
    got = figures(totals["live"])
    assert got["ctr"] == pytest.approx(0.05) and got["completion_rate"] == pytest.approx(0.25)
    assert got["watch_seconds_per_user"] == pytest.approx(25.0)
    assert figures({})["ctr"] is None

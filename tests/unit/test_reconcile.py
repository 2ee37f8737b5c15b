"""Reconciliation's pure parts: the hours compared, drift per view metric (per key, so errors cannot cancel), the
rows over the limit, and the Dagster drift check's verdict and message."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from batch_layer.reconcile.drift import ViewTotals, describe, drift_rows, hours_to_reconcile, over_threshold
from orchestration.defs.publish.checks import reconciliation_drift_result

H = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
AT = datetime(2026, 3, 1, 15, 10, tzinfo=timezone.utc)


def test_hours_to_reconcile_are_settled_and_inside_the_bucket_ttl():
    # 15:10 with a 3 h TTL: 12:00 started 3 h 10 min ago (its first buckets may be gone); 14:00 ended 10 min ago.
    assert hours_to_reconcile(now=AT, bucket_ttl_seconds=3 * 3600, settle_seconds=300) == [
        H + timedelta(hours=1), H + timedelta(hours=2)]
    assert hours_to_reconcile(now=AT, bucket_ttl_seconds=3 * 3600, settle_seconds=900) == [H + timedelta(hours=1)]
    assert hours_to_reconcile(now=H + timedelta(minutes=30), bucket_ttl_seconds=3600, settle_seconds=0) == []
    with pytest.raises(ValueError, match="time zone"):
        hours_to_reconcile(now=datetime(2026, 3, 1), bucket_ttl_seconds=3600, settle_seconds=0)


def test_drift_is_summed_per_key_over_both_layers_keys():
    batch = ViewTotals("engagement", ("events", "clicks"), {"u1": {"events": 10, "clicks": 1}, "u2": {"events": 5}})
    # u2 lost 5 events in the speed layer, u3 has 5 the batch layer does not: the totals agree, the drift does not.
    speed = ViewTotals("engagement", ("events", "clicks"), {"u1": {"events": 10, "clicks": 1}, "u3": {"events": 5}})
    rows = drift_rows(H, batch, speed, checked_at=AT)
    assert rows == [
        {"hour": H, "view": "engagement", "metric": "events", "key_count": 3, "batch_total": 15.0,
         "speed_total": 15.0, "absolute_drift": 10.0, "relative_drift": pytest.approx(10 / 15), "checked_at": AT},
        {"hour": H, "view": "engagement", "metric": "clicks", "key_count": 3, "batch_total": 1.0,
         "speed_total": 1.0, "absolute_drift": 0.0, "relative_drift": 0.0, "checked_at": AT},
    ]
    only_speed = drift_rows(H, ViewTotals("ctr", ("clicks",), {}),
                            ViewTotals("ctr", ("clicks",), {"r:b": {"clicks": 2}}), checked_at=AT)
    assert (only_speed[0]["relative_drift"], only_speed[0]["key_count"]) == (1.0, 1)
    empty = drift_rows(H, ViewTotals("ctr", ("clicks",), {}), ViewTotals("ctr", ("clicks",), {}), checked_at=AT)
    assert (empty[0]["relative_drift"], empty[0]["key_count"]) == (0.0, 0)
    with pytest.raises(ValueError, match="cannot compare"):
        drift_rows(H, batch, ViewTotals("ctr", ("clicks",), {}), checked_at=AT)


def test_the_drift_check_names_the_views_and_hours_over_the_limit():
    def row(view: str, metric: str, hour: datetime, batch: float, speed: float) -> dict:
        (out,) = drift_rows(hour, ViewTotals(view, (metric,), {"k": {metric: batch}}),
                            ViewTotals(view, (metric,), {"k": {metric: speed}}), checked_at=AT)
        return out

    rows = [row("engagement", "events", H, 1000, 995), row("qoe", "plays", H + timedelta(hours=1), 100, 90),
            row("ctr", "clicks", H, 50, 50)]
    assert [r["view"] for r in over_threshold(rows, 0.01)] == ["qoe"]
    assert [r["view"] for r in over_threshold(rows, 0.001)] == ["engagement", "qoe"]
    assert describe(over_threshold(rows, 0.01)) == \
        "qoe.plays at 2026-03-01 13:00 UTC: speed 90 vs batch 100 (drift 10.00 %)"

    passed = reconciliation_drift_result(rows[:1] + rows[2:], 0.01)
    assert passed.passed and passed.metadata["max_relative_drift"].value == pytest.approx(0.005)
    failed = reconciliation_drift_result(rows, 0.01)
    assert not failed.passed
    assert "qoe @ 2026-03-01T13:00:00+00:00" in failed.description and "engagement" not in failed.description
    assert failed.metadata["hours_checked"].data == [H.isoformat(), (H + timedelta(hours=1)).isoformat()]


def test_the_reconciliation_asset_judges_hours_at_its_configured_clock():
    from dagster import Failure

    from orchestration.defs.publish.assets import ReconciliationConfig

    at = datetime(2026, 3, 1, 15, 10, tzinfo=timezone.utc)
    assert ReconciliationConfig(as_of="2026-03-01T16:10:00+01:00").clock() == at
    before = datetime.now(timezone.utc)
    assert before <= ReconciliationConfig().clock() <= datetime.now(timezone.utc)
    with pytest.raises(Failure, match="has no time zone"):
        ReconciliationConfig(as_of="2026-03-01T15:10:00").clock()

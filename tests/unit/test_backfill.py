"""The partition-range logic of `reelytics backfill`: which hourly and daily partitions a range selects."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orchestration.backfill import BackfillPlan, BackfillRangeError, parse_bound, plan_backfill

NOW = datetime(2026, 11, 23, 18, 42, tzinfo=timezone.utc)


def test_a_date_is_its_first_hour_as_start_and_its_last_hour_as_end():
    assert parse_bound("2026-11-20", end=False) == datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
    assert parse_bound("2026-11-20", end=True) == datetime(2026, 11, 20, 23, tzinfo=timezone.utc)
    for text in ("2026-11-20T14", "2026-11-20T14:00", "2026-11-20 14:00", "2026-11-20T14:00:00Z"):
        assert parse_bound(text, end=True) == datetime(2026, 11, 20, 14, tzinfo=timezone.utc), text


@pytest.mark.parametrize("text", ["20.11.2026", "2026-11-20T14:30", "2026-13-01", "2026-11-20T24", "yesterday"])
def test_other_spellings_are_refused_with_the_accepted_ones(text):
    with pytest.raises(BackfillRangeError, match=r"2026-11-20T14|must be|month"):
        parse_bound(text, end=False)


def test_two_days_are_48_hours_then_2_dates():
    plan = plan_backfill("2026-11-20", "2026-11-21", now=NOW)
    assert len(plan.hourly_keys) == 48 and plan.total == 50
    assert plan.hourly_keys[:2] == ("2026-11-20-00:00", "2026-11-20-01:00")
    assert plan.hourly_keys[-1] == "2026-11-21-23:00"
    assert plan.daily_keys == ("2026-11-20", "2026-11-21") and plan.left_out_days == ()
    assert plan.describe() == ("48 hourly partitions (2026-11-20-00:00 .. 2026-11-21-23:00) then "
                               "2 daily partitions (2026-11-20 .. 2026-11-21)")


def test_hours_across_midnight_touch_both_dates():
    plan = plan_backfill("2026-11-20T22", "2026-11-21T01", now=NOW)
    assert plan == BackfillPlan(("2026-11-20-22:00", "2026-11-20-23:00", "2026-11-21-00:00", "2026-11-21-01:00"),
                                ("2026-11-20", "2026-11-21"))


def test_asset_choice_selects_one_kind():
    hourly = plan_backfill("2026-11-20T14", "2026-11-20T14", assets="hourly", now=NOW)
    assert hourly == BackfillPlan(("2026-11-20-14:00",), ())
    daily = plan_backfill("2026-11-20", "2026-11-22", assets="daily", now=NOW)
    assert daily == BackfillPlan((), ("2026-11-20", "2026-11-21", "2026-11-22"))


def test_today_builds_its_closed_hours_and_leaves_its_date_to_the_nightly_run():
    plan = plan_backfill("2026-11-23T00", "2026-11-23T17", now=NOW)
    assert len(plan.hourly_keys) == 18 and plan.hourly_keys[-1] == "2026-11-23-17:00"
    assert plan.daily_keys == () and plan.left_out_days == ("2026-11-23",)


def test_the_hour_in_progress_is_refused_with_the_last_closed_one():
    with pytest.raises(BackfillRangeError, match=r"2026-11-23-18:00 has not closed yet.*end at 2026-11-23T17"):
        plan_backfill("2026-11-23T10", "2026-11-23T18", now=NOW)
    with pytest.raises(BackfillRangeError, match="has not closed yet"):
        plan_backfill("2026-11-22", "2026-11-23", now=NOW)  # a date as end means its last hour


def test_reversed_early_and_open_daily_ranges_are_refused():
    with pytest.raises(BackfillRangeError, match="give the earlier time as --start"):
        plan_backfill("2026-11-21", "2026-11-20", now=NOW)
    with pytest.raises(BackfillRangeError, match="first partition"):
        plan_backfill("2025-12-31", "2026-01-01", now=NOW)
    with pytest.raises(BackfillRangeError, match="give dates up to 2026-11-22"):
        plan_backfill("2026-11-23", "2026-11-23", assets="daily", now=NOW)


def test_a_backfill_runs_each_dates_hours_together_up_to_the_limit():
    from orchestration.backfill import hourly_runs

    plan = plan_backfill("2026-11-20T22", "2026-11-22T01", now=NOW)
    runs = hourly_runs(plan.hourly_keys, per_run=24)
    assert runs == [("2026-11-20-22:00", "2026-11-20-23:00", 2), ("2026-11-21-00:00", "2026-11-21-23:00", 24),
                    ("2026-11-22-00:00", "2026-11-22-01:00", 2)]
    assert hourly_runs(plan.hourly_keys[2:8], per_run=4) == [("2026-11-21-00:00", "2026-11-21-03:00", 4),
                                                             ("2026-11-21-04:00", "2026-11-21-05:00", 2)]
    assert hourly_runs(("2026-11-21-05:00",), per_run=24) == [("2026-11-21-05:00", "2026-11-21-05:00", 1)]

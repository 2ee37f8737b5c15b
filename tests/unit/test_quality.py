"""The quality suites on small hand-made pandas frames: a good frame passes, a broken one fails with the reason.

Contract: each table's suite (built from ``warehouse_models``) holds on clean rows, and each kind of defect it
is meant to catch (a duplicated or missing key, a value outside the envelope's set, a position past the title's
duration, a reference to a title or user the dimensions lack, a row count that differs from the upstream
table's, two current versions of a user, a stale newest event) fails it, naming the rule, the column, the
number of bad rows and sample values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from batch_layer.quality.dim_content import dim_content_suite
from batch_layer.quality.dim_users import CURRENT_VERSIONS, dim_users_suite, with_current_versions
from batch_layer.quality.fact_stream_events import DURATION_LIMIT, fact_date_suite, with_duration_limit
from batch_layer.quality.marts import mart_suite
from batch_layer.quality.silver_events import (
    bronze_event_ids_of_hour,
    freshness_suite,
    partition_time,
    silver_hour_suite,
)
from batch_layer.quality.suite import CheckOutcome, columns_read, failure_of, merged, validate
from warehouse_models.marts import MART_SEGMENTS

HOUR = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)


def _frame(columns: Iterable[str], rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame with every column the suite reads (absent values null) and the given rows."""
    names = list(dict.fromkeys([*columns, *(k for row in rows for k in row)]))
    return pd.DataFrame([{name: row.get(name) for name in names} for row in rows], columns=names)


def _failed(outcome: CheckOutcome) -> dict[str, Any]:
    """The outcome's failures by rule text (asserting the outcome failed)."""
    assert not outcome.passed, outcome.why
    return {f.rule: f for f in outcome.failures}


def _silver_row(event_id: str, minute: int, **values: Any) -> dict[str, Any]:
    at = HOUR + timedelta(minutes=minute)
    return {"event_hour": HOUR, "event_date": HOUR.date(), "event_id": event_id, "schema_version": 1,
            "event_type": "heartbeat", "event_timestamp": at, "device_type": "tv", "position_seconds": 60.0 * minute,
            **values}


def test_silver_hour_passes_on_clean_rows_matching_bronze():
    suite = silver_hour_suite(bronze_event_ids=3)
    rows = [_silver_row("e1", 1), _silver_row("e2", 2, event_type="click", device_type="mobile"),
            _silver_row("e3", 3)]
    outcome = validate(_frame(columns_read(suite), rows), suite, table="silver_events", scope="h", keys=["event_id"])
    assert outcome.passed, outcome.why
    assert outcome.rows == 3 and "all" in outcome.why


def test_silver_hour_fails_on_duplicate_ids_bad_enums_and_a_count_off_bronze():
    suite = silver_hour_suite(bronze_event_ids=3)
    rows = [_silver_row("e1", 1), _silver_row("e1", 2), _silver_row("e2", 3, device_type="toaster"),
            _silver_row("e3", 4, event_type="user_upsert")]
    outcome = validate(_frame(columns_read(suite), rows), suite, table="silver_events", scope="h", keys=["event_id"])
    failed = _failed(outcome)
    unique = failed["event_id is unique within the event hour"]
    assert unique.column == "event_id" and unique.bad_rows == 2 and "e1" in unique.samples[0]
    device = next(f for f in outcome.failures if f.column == "device_type")
    assert device.bad_rows == 1 and device.samples == ("device_type=toaster (event_id=e2)",)
    event_type = next(f for f in outcome.failures if f.column == "event_type")
    assert event_type.expectation == "expect_column_values_to_be_in_set" and "user_upsert" in event_type.samples[0]
    count = next(f for f in outcome.failures if f.expectation == "expect_table_row_count_to_equal")
    assert count.observed == "4" and "(3)" in count.rule
    assert "device_type" in outcome.why and "2 bad rows" in outcome.why


def test_hours_checked_together_fail_with_the_hour_that_broke_and_sum_their_rows():
    suite = silver_hour_suite(bronze_event_ids=2)
    good = validate(_frame(columns_read(suite), [_silver_row("e1", 1), _silver_row("e2", 2)]), suite,
                    table="silver_events", scope="event_hour 10:00", keys=["event_id"])
    bad = validate(_frame(columns_read(suite), [_silver_row("e3", 1), _silver_row("e3", 2)]), suite,
                   table="silver_events", scope="event_hour 11:00", keys=["event_id"])
    both = merged([good, bad], scope="event_hour 10:00 .. 11:00 (2 hours)")
    assert good.passed and not both.passed
    assert both.rows == 4 and both.expectations == good.expectations + bad.expectations
    assert both.failures and all(f.rule.startswith("event_hour 11:00: ") for f in both.failures)
    assert both.scope in both.why and "event_hour 11:00: " in both.why
    assert merged([good], scope="ignored") is good
    with pytest.raises(ValueError):
        merged([], scope="none")


def test_silver_hour_fails_on_a_missing_event_id():
    suite = silver_hour_suite(bronze_event_ids=2)
    rows = [_silver_row("e1", 1), _silver_row(None, 2)]  # type: ignore[arg-type]
    failed = _failed(validate(_frame(columns_read(suite), rows), suite, table="silver_events", scope="h"))
    assert failed["event_id is declared NOT NULL in silver_events"].bad_rows == 1


def test_bronze_event_ids_count_only_valid_viewer_events_of_the_hour_once():
    bronze = pd.DataFrame([
        {"event_id": "a", "event_type": "heartbeat", "parse_error": None, "event_timestamp": HOUR},
        {"event_id": "a", "event_type": "heartbeat", "parse_error": None, "event_timestamp": HOUR},  # a retry
        {"event_id": "b", "event_type": "view_end", "parse_error": None,
         "event_timestamp": HOUR + timedelta(minutes=59)},
        {"event_id": "c", "event_type": "heartbeat", "parse_error": "position_seconds: must be a number",
         "event_timestamp": HOUR},
        {"event_id": "d", "event_type": "content_upsert", "parse_error": None, "event_timestamp": HOUR},
        {"event_id": "e", "event_type": "click", "parse_error": None, "event_timestamp": HOUR + timedelta(hours=1)},
    ])
    bronze["event_timestamp"] = pd.to_datetime(bronze["event_timestamp"], utc=True)
    assert bronze_event_ids_of_hour(bronze, HOUR) == 2


def test_freshness_passes_when_recent_and_fails_when_stale():
    now = HOUR + timedelta(hours=3)
    suite = freshness_suite(now=now, max_age=timedelta(hours=2))
    recent = pd.DataFrame({"event_timestamp": pd.to_datetime([HOUR, now - timedelta(minutes=30)], utc=True)})
    assert validate(recent, suite, table="silver_events", scope="newest").passed
    stale = pd.DataFrame({"event_timestamp": pd.to_datetime([HOUR, HOUR + timedelta(minutes=50)], utc=True)})
    (failure,) = _failed(validate(stale, suite, table="silver_events", scope="newest")).values()
    assert failure.column == "event_timestamp" and failure.observed.startswith("2026-03-01T10:50")


def test_partition_time_reads_both_forms_of_the_delta_log_as_utc():
    assert partition_time("2026-03-01 10:00:00") == HOUR
    assert partition_time("2026-03-01T10:00:00.000000Z") == HOUR


def _fact_row(event_id: str, content_id: str | None, position: float | None, **values: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": "u1", "content_id": content_id, "event_timestamp": HOUR,
            "event_type": "heartbeat", "position_seconds": position, "created_at": HOUR, "event_date": HOUR.date(),
            "device_type": "tv", "watch_seconds": 10.0, **values}


def _fact_outcome(rows: list[dict[str, Any]], *, silver_rows: int) -> CheckOutcome:
    suite = fact_date_suite(silver_rows=silver_rows, content_ids={"t1", "live1"}, user_ids={"u1"},
                            tolerance_seconds=30.0)
    durations = pd.DataFrame({"content_id": ["t1", "live1"], "duration_minutes": [10, None]})
    frame = with_duration_limit(_frame([c for c in columns_read(suite) if c != DURATION_LIMIT], rows), durations,
                                tolerance_seconds=30.0)
    return validate(frame, suite, table="fact_stream_events", scope="d", keys=["event_id", "content_id"])


def test_fact_date_passes_with_known_titles_and_positions_within_duration():
    rows = [_fact_row("e1", "t1", 600.0 + 29.0),  # the last heartbeat may overshoot by less than the tolerance
            _fact_row("e2", "live1", 50_000.0),  # live: no duration, not judged
            _fact_row("e3", None, None, event_type="click", device_type=None)]
    outcome = _fact_outcome(rows, silver_rows=3)
    assert outcome.passed, outcome.why


def test_fact_date_without_built_dimensions_leaves_references_unjudged_and_keeps_the_other_rules():
    suite = fact_date_suite(silver_rows=2, content_ids=None, user_ids=None, tolerance_seconds=30.0)
    rules = [e.meta["rule"] for e in suite]
    assert not any("dim_content" in r or "dim_users" in r for r in rules)
    frame = with_duration_limit(
        _frame([c for c in columns_read(suite) if c != DURATION_LIMIT],
               [_fact_row("e1", "ghost", 5.0), _fact_row("e1", "t1", 5.0)]),
        pd.DataFrame({"content_id": [], "duration_minutes": []}), tolerance_seconds=30.0)
    outcome = validate(frame, suite, table="fact_stream_events", scope="d", keys=["event_id", "content_id"])
    assert not outcome.passed
    assert [f.rule for f in outcome.failures] == ["event_id is unique within the event date"]


def test_fact_date_fails_on_unknown_title_and_user_a_position_past_the_end_and_a_count_off_silver():
    rows = [_fact_row("e1", "t1", 700.0), _fact_row("e2", "ghost", 5.0), _fact_row("e3", "t1", 5.0, user_id="u9")]
    failed = _failed(_fact_outcome(rows, silver_rows=4))
    position = failed["position_seconds <= the title's duration + 30 s"]
    assert position.bad_rows == 1 and position.samples == (
        "duration_limit_seconds=630.0, position_seconds=700.0 (event_id=e1, content_id=t1)",)
    titles = failed["content_id is in dim_content (2 titles)"]
    assert titles.bad_rows == 1 and titles.samples == ("content_id=ghost (event_id=e2)",)
    assert failed["user_id is in dim_users (1 users)"].samples[0].startswith("user_id=u9")
    assert failed["fact rows of the date == silver rows of the date (4)"].observed == "3"


def _user(user_id: str, start_hour: int, end_hour: int | None, **values: Any) -> dict[str, Any]:
    valid_from = HOUR + timedelta(hours=start_hour)
    return {"user_key": f"{user_id}-{start_hour}", "user_id": user_id, "valid_from": valid_from,
            "valid_to": None if end_hour is None else HOUR + timedelta(hours=end_hour), "is_current": end_hour is None,
            "subscription_type": "basic", "max_streams": 1, **values}


def _users_outcome(rows: list[dict[str, Any]]) -> CheckOutcome:
    suite = dim_users_suite()
    columns = [c for c in columns_read(suite) if c != CURRENT_VERSIONS]
    frame = with_current_versions(_frame(columns, rows))
    return validate(frame, suite, table="dim_users", scope="all", keys=["user_id", "valid_from"])


def test_dim_users_passes_with_one_current_version_per_user():
    rows = [_user("u1", 0, 2), _user("u1", 2, None, subscription_type="premium", max_streams=4), _user("u2", 1, None)]
    outcome = _users_outcome(rows)
    assert outcome.passed, outcome.why


def test_dim_users_fails_on_two_current_versions_a_repeated_version_and_a_bad_plan():
    rows = [_user("u1", 0, None), _user("u1", 2, None), _user("u2", 1, None), _user("u2", 1, 3),
            _user("u3", 1, None, subscription_type="platinum", max_streams=99)]
    failed = _failed(_users_outcome(rows))
    current = failed["exactly one current version (is_current) per user_id"]
    assert current.bad_rows == 2 and all("user_id=u1" in s for s in current.samples)
    assert failed["(user_id, valid_from) is unique (one row per version)"].bad_rows == 2
    assert {f.column for f in failed.values()} >= {"subscription_type", "max_streams"}


def test_dim_content_passes_on_unique_titles_and_fails_on_a_repeat_and_a_bad_type():
    suite = dim_content_suite()
    good = _frame(columns_read(suite), [{"content_id": "t1", "content_type": "vod", "duration_minutes": 90},
                                        {"content_id": "live1", "content_type": "live", "age_rating": "TV-14"}])
    assert validate(good, suite, table="dim_content", scope="all").passed
    bad = _frame(columns_read(suite), [{"content_id": "t1", "content_type": "vod"},
                                       {"content_id": "t1", "content_type": "podcast", "duration_minutes": 0}])
    failed = _failed(validate(bad, suite, table="dim_content", scope="all", keys=["content_id"]))
    assert failed["content_id is unique (one row per title or channel)"].bad_rows == 2
    assert {f.column for f in failed.values()} == {"content_id", "content_type", "duration_minutes"}


def test_mart_suite_requires_its_not_null_columns():
    suite = mart_suite(MART_SEGMENTS)
    required = [c.name for c in MART_SEGMENTS.columns if not c.nullable]
    assert sorted(columns_read(suite)) == sorted(required)
    good = pd.DataFrame([{name: (date(2026, 3, 1) if name == "event_date" else "x") for name in required}])
    assert validate(good, suite, table=MART_SEGMENTS.name, scope="d").passed
    bad = good.assign(**{required[0]: [None]})
    (failure,) = _failed(validate(bad, suite, table=MART_SEGMENTS.name, scope="d")).values()
    assert failure.column == required[0] and failure.bad_rows == 1


def test_failure_of_an_expectation_that_raised_reports_the_error():
    failure = failure_of("expect_column_values_to_be_unique", {"column": "event_id"}, {"rule": "event_id is unique"},
                         {}, error="column event_id not found")
    assert failure.sentence() == "event_id is unique [event_id] (observed error: column event_id not found)"


@pytest.mark.parametrize("name", ["silver", "fact", "users", "content"])
def test_every_suite_states_a_rule_for_each_expectation(name: str):
    suites = {
        "silver": silver_hour_suite(bronze_event_ids=0),
        "fact": fact_date_suite(silver_rows=0, content_ids=(), user_ids=(), tolerance_seconds=0.0),
        "users": dim_users_suite(),
        "content": dim_content_suite(),
    }
    assert all(e.meta and e.meta.get("rule") for e in suites[name])

"""Gold transformations on small hand-made frames (local Spark, no Delta).

Contract: the fact table has one row per silver event with ``watch_seconds`` = 10 for a playing heartbeat and
0 otherwise (a view_end's session total kept apart), buffering flagged, ``created_at`` from the data and the
event date; ``dim_content`` holds each title's newest record by event time; ``dim_users`` holds one row per
version of a user (a changed attribute opens a version, a repeated record does not), with ``valid_to`` the next
version's ``valid_from``, one current version and a deterministic ``user_key``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from batch_layer.gold.job import dates_of_hours

T0 = datetime(2026, 1, 5, 23, 59, 50, tzinfo=timezone.utc)


def test_dates_of_hours_are_utc_dates():
    late_evening = datetime(2026, 1, 6, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert dates_of_hours([T0, T0 + timedelta(hours=1), late_evening]) == {date(2026, 1, 5), date(2026, 1, 6)}

"""Traffic counts per scope and second, and the spike rule, on hand-made data (local Spark, no services).

Contract: every valid event counts once in ``topic:<kind>`` of its topic, and viewer events (playback,
interactions) that name a title also in ``content:<id>``; counts are per 1-second event-time window, an event
arriving out of order counts in its own second; a second spikes when its rate exceeds factor × the mean of the
baseline seconds before it and the minimum rate; an open alert clears after 10 seconds without a spike
against the baseline it was raised with; a range of seconds is judged in order with the open alert carried
along, exactly as judging each second afresh would.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from speed_layer.spikes import (
    CLEAR_AFTER_SECONDS,
    QUERY,
    Transition,
    is_spike,
    judge,
    judge_seconds,
    rate_and_baseline,
)
from warehouse_models.events import TopicKind
from warehouse_models.settings import Settings

SETTINGS = Settings(speed_allowed_lateness_seconds=120, speed_spike_baseline_seconds=20, speed_spike_factor=3.0,
                    speed_spike_min_eps=5.0)


def test_query_reads_every_event_topic():
    assert QUERY.name == "spikes"
    assert set(QUERY.topics) == {TopicKind.PLAYBACK, TopicKind.INTERACTIONS, TopicKind.CATALOG, TopicKind.DERIVED}


def _counts(pattern: list[tuple[int, int, int]]) -> dict[int, int]:
    """(first second, last second inclusive, events per second) runs."""
    return {s: n for first, last, n in pattern for s in range(first, last + 1)}


def test_rate_and_baseline():
    counts = _counts([(0, 19, 2), (20, 20, 40)])
    assert rate_and_baseline(counts, 20, 20) == (40, 2.0)
    assert rate_and_baseline(counts, 5, 20) == (2, 0.5)  # seconds before the data count as 0


def test_raise_needs_factor_and_minimum_rate():
    steady = _counts([(0, 19, 2)])
    assert judge("content:x", {**steady, 20: 7}, second=20, open_alert=None, settings=SETTINGS) == Transition(
        "raised", "content:x", 7, 2.0, 3.0, since=20)
    assert judge("content:x", {**steady, 20: 6}, second=20, open_alert=None, settings=SETTINGS) is None  # 6 <= 3 x 2
    quiet = _counts([(0, 19, 1)])
    assert judge("content:x", {**quiet, 20: 4}, second=20, open_alert=None, settings=SETTINGS) is None  # < 5 events/s


def test_open_alert_clears_after_ten_seconds_back_under_the_baseline_it_was_raised_with():
    counts = _counts([(0, 19, 2), (20, 29, 40), (30, 48, 2)])
    raised = judge("content:x", counts, second=20, open_alert=None, settings=SETTINGS)
    assert raised == Transition("raised", "content:x", 40, 2.0, 3.0, since=20)
    alert = {"scope": "content:x", "baseline": raised.baseline, "since": 20}
    # Still 40 events/s at 29: the moving baseline has caught up (19.1), the alert stays open all the same.
    assert judge("content:x", counts, second=29, open_alert=alert, settings=SETTINGS) is None
    assert judge("content:x", counts, second=38, open_alert=alert, settings=SETTINGS) is None  # 29 is in the last 10 s
    assert judge("content:x", counts, second=39, open_alert=alert, settings=SETTINGS) == Transition(
        "cleared", "content:x", 2, 2.0, 3.0, since=20, until=39)


def test_a_catch_up_range_raises_then_clears_once_in_order():
    counts = _counts([(0, 179, 2), (180, 199, 40), (200, 259, 2)])
    assert judge_seconds("content:x", counts, first=0, last=258, open_alert=None, settings=SETTINGS) == [
        Transition("raised", "content:x", 40, 2.0, 3.0, since=180),
        Transition("cleared", "content:x", 2, 2.0, 3.0, since=180, until=209),
    ]


def test_a_range_picks_up_the_open_alert_it_starts_with():
    counts = _counts([(0, 19, 2), (20, 29, 40), (30, 48, 2)])
    alert = {"scope": "content:x", "baseline": 2.0, "since": 20}
    assert judge_seconds("content:x", counts, first=25, last=38, open_alert=alert, settings=SETTINGS) == []
    assert judge_seconds("content:x", counts, first=25, last=48, open_alert=alert, settings=SETTINGS) == [
        Transition("cleared", "content:x", 2, 2.0, 3.0, since=20, until=39)]
    assert judge_seconds("content:x", counts, first=40, last=39, open_alert=alert, settings=SETTINGS) == []


def _judge_each_second_afresh(counts: Mapping[int, int], first: int, last: int) -> list[Transition]:
    """The rule second by second, a fresh baseline sum each time, the open alert kept as Redis keeps it."""
    factor, min_eps = SETTINGS.speed_spike_factor, SETTINGS.speed_spike_min_eps
    out: list[Transition] = []
    alert: dict[str, Any] | None = None
    for second in range(first, last + 1):
        rate, baseline = rate_and_baseline(counts, second, SETTINGS.speed_spike_baseline_seconds)
        if alert is None:
            if is_spike(rate, baseline, factor=factor, min_eps=min_eps):
                out.append(Transition("raised", "content:x", rate, baseline, factor, since=second))
                alert = {"baseline": round(baseline, 3), "since": second}
            continue
        recent = range(second - CLEAR_AFTER_SECONDS + 1, second + 1)
        if not any(is_spike(counts.get(s, 0), alert["baseline"], factor=factor, min_eps=min_eps) for s in recent):
            out.append(Transition("cleared", "content:x", rate, alert["baseline"], factor, since=alert["since"],
                                  until=second))
            alert = None
    return out


def test_the_running_baseline_judges_like_a_fresh_sum_per_second():
    rng = random.Random(7)
    counts = {s: rng.choice([0, 1, 2, 3, 2, 2, 30, 60]) if rng.random() < 0.1 else rng.randint(0, 4)
              for s in range(0, 900)}
    expected = _judge_each_second_afresh(counts, 0, 899)
    assert sum(1 for t in expected if t.type == "raised") >= 3  # the data does exercise raising and clearing
    assert judge_seconds("content:x", counts, first=0, last=899, open_alert=None, settings=SETTINGS) == expected

"""The shared query's event-time cut-off: a function of earlier batches only, replays see the same, late counted once."""

from __future__ import annotations

import pytest

from speed_layer.lateness import Cutoff, advance, watermark_for

LATENESS = 120_000


def test_first_batch_has_no_watermark_and_sets_the_next():
    first = advance(None, 0, max_event_ms=1_000_000, late=0, lateness_ms=LATENESS)
    assert first == Cutoff(batch_id=0, used_ms=None, next_ms=880_000, late_total=0)
    assert watermark_for(first, 1) == 880_000


def test_watermark_never_moves_back_and_late_events_add_up():
    first = advance(None, 0, max_event_ms=1_000_000, late=0, lateness_ms=LATENESS)
    # A batch of only old events: the watermark stays, its 3 late events are counted.
    second = advance(first, 1, max_event_ms=500_000, late=3, lateness_ms=LATENESS)
    assert (second.used_ms, second.next_ms, second.late_total) == (880_000, 880_000, 3)
    third = advance(second, 2, max_event_ms=2_000_000, late=2, lateness_ms=LATENESS)
    assert (third.used_ms, third.next_ms, third.late_total) == (880_000, 1_880_000, 5)
    empty = advance(third, 3, max_event_ms=None, late=0, lateness_ms=LATENESS)
    assert (empty.used_ms, empty.next_ms, empty.late_total) == (1_880_000, 1_880_000, 5)


def test_a_replayed_batch_uses_its_first_watermark_and_counts_nothing_twice():
    first = advance(None, 0, max_event_ms=1_000_000, late=0, lateness_ms=LATENESS)
    second = advance(first, 1, max_event_ms=3_000_000, late=4, lateness_ms=LATENESS)
    # Batch 1 crashed after its record was stored: the replay finds batch 1's own record.
    assert watermark_for(second, 1) == first.next_ms
    assert advance(second, 1, max_event_ms=3_000_000, late=4, lateness_ms=LATENESS) == second


def test_a_batch_older_than_the_record_is_refused_with_advice():
    record = advance(None, 5, max_event_ms=1_000_000, late=0, lateness_ms=LATENESS)
    with pytest.raises(ValueError, match="checkpoint"):
        watermark_for(record, 4)


def test_fields_round_trip():
    record = Cutoff(batch_id=7, used_ms=None, next_ms=42, late_total=9)
    assert Cutoff.from_fields(record.fields()) == record
    assert Cutoff.from_fields({}) is None

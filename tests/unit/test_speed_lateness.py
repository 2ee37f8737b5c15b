"""The shared query's event-time cut-off: per topic, a function of earlier batches only, replays see the same."""

from __future__ import annotations

import pytest

from speed_layer.lateness import Cutoff, advance, of_checkpoint, watermarks_for

LATENESS = 120_000


def test_first_batch_has_no_watermark_and_sets_the_next_per_topic():
    first = advance(None, 0, newest={"playback": 1_000_000, "catalog": 9_000_000}, late=0, lateness_ms=LATENESS)
    assert first == Cutoff(batch_id=0, used={}, next={"playback": 880_000, "catalog": 8_880_000}, late_total=0)
    assert watermarks_for(first, 1) == {"playback": 880_000, "catalog": 8_880_000}


def test_watermarks_never_move_back_and_late_events_add_up():
    first = advance(None, 0, newest={"playback": 1_000_000}, late=0, lateness_ms=LATENESS)
    # A batch of only old events: the watermark stays, its 3 late events are counted.
    second = advance(first, 1, newest={"playback": 500_000}, late=3, lateness_ms=LATENESS)
    assert (second.used, second.next, second.late_total) == ({"playback": 880_000}, {"playback": 880_000}, 3)
    # A topic seen for the first time gets its own watermark; the other keeps its own.
    third = advance(second, 2, newest={"playback": 2_000_000, "interactions": 300_000}, late=2, lateness_ms=LATENESS)
    assert third.used == {"playback": 880_000}
    assert third.next == {"playback": 1_880_000, "interactions": 180_000}
    assert third.late_total == 5
    empty = advance(third, 3, newest={}, late=0, lateness_ms=LATENESS)
    assert (empty.used, empty.next, empty.late_total) == (third.next, third.next, 5)


def test_a_replayed_batch_uses_its_first_watermarks_and_counts_nothing_twice():
    first = advance(None, 0, newest={"playback": 1_000_000}, late=0, lateness_ms=LATENESS)
    second = advance(first, 1, newest={"playback": 3_000_000}, late=4, lateness_ms=LATENESS)
    # Batch 1 crashed after its record was stored: the replay finds batch 1's own record.
    assert watermarks_for(second, 1) == first.next
    assert advance(second, 1, newest={"playback": 3_000_000}, late=4, lateness_ms=LATENESS) == second


def test_a_batch_older_than_the_record_is_refused_with_advice():
    record = advance(None, 5, newest={"playback": 1_000_000}, late=0, lateness_ms=LATENESS)
    with pytest.raises(ValueError, match="checkpoint"):
        watermarks_for(record, 4)


def test_fields_round_trip():
    record = Cutoff(batch_id=7, used={"a": 1}, next={"a": 42, "b": 3}, late_total=9)
    assert Cutoff.from_fields(record.fields()) == record
    assert Cutoff.from_fields({}) is None


def test_a_record_of_another_checkpoint_is_ignored_and_round_trips_with_its_own() -> None:
    record = advance(None, 6, newest={"playback": 1_000_000}, late=2, lateness_ms=LATENESS, checkpoint_id="q-old")
    stored = Cutoff.from_fields(record.fields())
    assert stored == record
    # A query on a new checkpoint starts from batch 0 again: the old record must neither fail it nor cut it.
    assert of_checkpoint(stored, "q-new") is None
    fresh = advance(of_checkpoint(stored, "q-new"), 0, newest={"playback": 2_000_000}, late=0, lateness_ms=LATENESS,
                    checkpoint_id="q-new")
    assert fresh.used == {} and fresh.late_total == 0 and fresh.checkpoint_id == "q-new"
    assert of_checkpoint(stored, "q-old") is stored
    with pytest.raises(ValueError, match="disagree"):
        watermarks_for(of_checkpoint(stored, "q-old"), 0)

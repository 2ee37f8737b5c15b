"""The pure parts of the batch benchmark: its scale, the user calibration, Kafka-shaped records, query figures."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from bench.batch import (
    BENCH_QUERIES,
    QUICK_SCALE,
    BatchScale,
    bench_queries,
    kafka_records,
    query_figures,
    scale_for,
    tree_rss_bytes,
    users_for_events,
)
from warehouse_models.events import TopicKind, encode


def test_scale_is_full_or_quick_with_options_on_top():
    assert scale_for({}, quick=False) == BatchScale(1_000_000, 2_000, 30, 100)
    assert scale_for({}, quick=True) == QUICK_SCALE
    assert scale_for({"events": 5000, "days": 3}, quick=True) == BatchScale(5000, QUICK_SCALE.day_users, 3,
                                                                           QUICK_SCALE.month_users)
    with pytest.raises(ValueError, match="month_days must be at least 1"):
        scale_for({"days": 0}, quick=False)


def test_users_scale_with_the_pilot_rate():
    assert users_for_events(1_000_000, pilot_events=19_430, pilot_users=200) == 10_294
    assert users_for_events(10, pilot_events=19_430, pilot_users=200) == 1
    with pytest.raises(ValueError, match="no events"):
        users_for_events(100, pilot_events=0, pilot_users=200)


def _event(n: int, account: str, event_type: str = "heartbeat") -> dict:
    return {"event_id": f"ev-{n}", "schema_version": 1, "event_type": event_type, "account_id": account,
            "user_id": f"u-{account}", "event_timestamp": f"2026-11-20T14:00:0{n}.000Z", "session_id": "s1",
            "content_id": "vod-1", "position_seconds": 1.0, "player_state": "playing"}


def test_records_keep_a_key_in_one_partition_with_offsets_counting_up():
    events = [_event(0, "a1"), _event(1, "a2"), _event(2, "a1"), _event(3, "a1", "impression")]
    records = list(kafka_records(events, partitions=6))
    kinds = [kind for kind, _ in records]
    assert kinds == [TopicKind.PLAYBACK, TopicKind.PLAYBACK, TopicKind.PLAYBACK, TopicKind.INTERACTIONS]
    first, second, third, fourth = (record for _, record in records)
    assert first["partition"] == third["partition"] and 0 <= second["partition"] < 6
    same = second["partition"] == first["partition"]
    assert (first["offset"], second["offset"], third["offset"]) == ((0, 1, 2) if same else (0, 0, 1))
    assert fourth["offset"] == 0  # another topic counts its own offsets
    assert first["key"] == b"a1" and first["value"] == encode(events[0])
    assert first["timestamp"] == datetime(2026, 11, 20, 14, 0, 0, tzinfo=timezone.utc)


def test_query_figures_take_the_slowest_median_and_the_ratio_of_sums():
    duck = {1: [0.2, 0.1, 0.3], 6: [0.5, 0.4, 0.6]}
    spark = {1: [2.0, 1.0, 3.0], 6: [4.0, 5.0, 6.0]}
    assert query_figures(duck, spark) == {"duckdb_query_max_s": 0.5, "spark_over_duckdb_ratio": 10.0}
    with pytest.raises(ValueError, match="same"):
        query_figures(duck, {1: [1.0]})


def test_the_five_queries_are_example_questions():
    queries = bench_queries()
    assert len(queries) == len(BENCH_QUERIES) == 5
    assert "yesterday" in queries[0].question and "dim_users" in queries[-1].sql


def test_rss_of_this_process_tree_is_counted():
    assert tree_rss_bytes(os.getpid()) > 10 * 1024**2
    assert tree_rss_bytes(2**22 + 12345) == 0

"""The pure parts of the batch benchmark: its scale, the user calibration, Kafka-shaped records, query figures."""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from bench.batch import (
    BENCH_QUERIES,
    QUICK_SCALE,
    BatchScale,
    bench_queries,
    code_digest,
    kafka_records,
    month_cache_key,
    pinned_sql,
    prune_cache,
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


def test_the_ten_example_questions_are_timed_with_yesterday_pinned():
    from batch_layer.analyst import EXAMPLE_QUERIES

    queries = bench_queries()
    assert queries == list(EXAMPLE_QUERIES) and len(BENCH_QUERIES) == 10
    pinned = pinned_sql(queries[0].sql, date(2025, 12, 31))
    assert "current_date" not in pinned and "f.event_date = DATE '2025-12-31'" in pinned
    assert pinned_sql(queries[2].sql, date(2025, 12, 31)) == queries[2].sql


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_month_cache_key_changes_with_the_code_the_scale_and_the_end(tmp_path: Path):
    root = _tree(tmp_path, {"sim/a.py": "x = 1\n", "sim/sub/b.py": "y = 2\n", "sim/notes.md": "prose"})
    digest = code_digest(root, ["sim"])
    assert digest == code_digest(root, ["sim"])
    (root / "sim/notes.md").write_text("other prose")
    assert code_digest(root, ["sim"]) == digest  # only Python files build the month
    (root / "sim/sub/b.py").write_text("y = 3\n")
    changed = code_digest(root, ["sim"])
    assert changed != digest
    assert code_digest(root, ["sim"], extra=["pyspark==4.2.0"]) != changed
    (root / "sim/sub/b.py").rename(root / "sim/b.py")
    assert code_digest(root, ["sim"]) != changed  # a moved file is a change too
    key = month_cache_key(users=100, days=30, end=date(2026, 1, 1), code=digest)
    assert key != month_cache_key(users=100, days=30, end=date(2026, 1, 1), code=changed)
    assert key != month_cache_key(users=20, days=30, end=date(2026, 1, 1), code=digest)
    assert key != month_cache_key(users=100, days=2, end=date(2026, 1, 1), code=digest)
    assert key != month_cache_key(users=100, days=30, end=date(2026, 2, 1), code=digest)


def test_prune_keeps_the_newest_months_and_removes_dead_builds(tmp_path: Path):
    for age, name in enumerate(("u1-newest", "u1-middle", "u2-other", "u1-oldest")):
        _tree(tmp_path, {f"{name}/month.json": "{}"})
        os.utime(tmp_path / name / "month.json", (1_000_000 - age, 1_000_000 - age))
    _tree(tmp_path, {"u1-incomplete/delta/x.py": "", f".k.building-{os.getpid()}/a": "", ".k.building-999999999/a": ""})
    removed = {p.name for p in prune_cache(tmp_path, keep=2, scale="u1-")}
    assert removed == {"u1-oldest", ".k.building-999999999"}
    assert {p.name for p in tmp_path.iterdir()} == {"u1-newest", "u1-middle", "u2-other", "u1-incomplete",
                                                    f".k.building-{os.getpid()}"}


def test_rss_of_this_process_tree_is_counted():
    assert tree_rss_bytes(os.getpid()) > 10 * 1024**2
    assert tree_rss_bytes(2**22 + 12345) == 0

"""The Arrow reduction of contributions and the late cut, on hand-made tables (no JVM).

Contract: :func:`reduce_table` takes only the rows flagged for the view (and kept by the mask), groups them by
the keys (null keys form their own group), adds the sums, collects each key's distinct non-null values sorted,
explodes an array column into one row per element; without keys it returns the rows as they are. The late cut
marks the valid events older than their topic's watermark and counts them per topic.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from speed_layer.lateness import EVENT_MS, TOPIC, VALID, late_mask, lateness_rows
from warehouse_models.metrics.contributions import Contributions, reduce_table


def _spark_only() -> Any:
    raise AssertionError("the Arrow reduction never builds Spark columns")


def spec(**kwargs: Any) -> Contributions:
    return Contributions(where=_spark_only, columns=_spark_only, **kwargs)


TABLE = pa.table({
    "v?": [True, True, True, False, True],
    "v.user": ["a", "a", None, "a", "b"],
    "v.start": [0, 0, 5, 0, 0],
    "v.n": [1, 2, 4, 8, 16],
    "v.who": ["x", "y", "x", "z", None],
    "v.tags": [["p", "q"], [], ["p"], ["r"], ["q"]],
    "other?": [False, False, False, True, False],
})


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=repr)


def test_groups_add_sums_and_collect_distinct_values() -> None:
    rows = reduce_table(TABLE, "v", spec(keys=("user", "start"), sums=("n",), distinct=("who",)))
    assert _sorted(rows) == _sorted([
        {"user": "a", "start": 0, "n": 3, "who": ["x", "y"]},
        {"user": None, "start": 5, "n": 4, "who": ["x"]},
        {"user": "b", "start": 0, "n": 16, "who": []},
    ])


def test_the_mask_keeps_only_the_rows_it_marks() -> None:
    keep = pa.array([False, True, True, True, False])
    rows = reduce_table(TABLE, "v", spec(keys=("user",), sums=("n",)), keep=keep)
    assert _sorted(rows) == _sorted([{"user": "a", "n": 2}, {"user": None, "n": 4}])


def test_explodes_an_array_column_before_grouping() -> None:
    rows = reduce_table(TABLE, "v", spec(keys=("tags",), sums=("n",), explode="tags"))
    assert _sorted(rows) == _sorted([{"tags": "p", "n": 5}, {"tags": "q", "n": 17}])


def test_without_keys_the_rows_come_as_they_are() -> None:
    rows = reduce_table(TABLE.select(["v?", "v.user", "v.n"]), "v", spec())
    assert rows == [{"user": "a", "n": 1}, {"user": "a", "n": 2}, {"user": None, "n": 4}, {"user": "b", "n": 16}]


def test_an_empty_batch_gives_no_rows() -> None:
    empty = TABLE.slice(0, 0)
    assert reduce_table(empty, "v", spec(keys=("user",), sums=("n",))) == []
    assert reduce_table(empty, "v", spec(keys=("tags",), sums=("n",), explode="tags")) == []


def test_sums_and_distinct_values_need_keys() -> None:
    with pytest.raises(ValueError, match="need keys"):
        spec(sums=("n",))


def test_the_late_cut_marks_events_older_than_their_topics_watermark() -> None:
    table = pa.table({
        VALID: [True, True, True, False, True],
        EVENT_MS: [100, 300, 50, None, 90],
        TOPIC: ["play", "play", "cat", "play", "cat"],
    })
    late = late_mask(table, {"play": 200})
    assert late.to_pylist() == [True, False, False, False, False]
    assert sorted(lateness_rows(table, late), key=lambda r: r["kafka_topic"]) == [
        {"kafka_topic": "cat", "newest": 90, "late": 0},
        {"kafka_topic": "play", "newest": 300, "late": 1},
    ]
    assert late_mask(table, {}).to_pylist() == [False] * 5

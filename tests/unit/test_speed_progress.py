"""What the progress listener keeps of a Spark query progress: pure, no Spark."""

from __future__ import annotations

from speed_layer.progress import progress_figures

PROGRESS = {
    "name": "speed-views@reelytics", "batchId": 7, "timestamp": "2026-12-04T21:00:00.000Z", "numInputRows": 1149,
    "inputRowsPerSecond": 574.5, "processedRowsPerSecond": 630.6,
    "durationMs": {"addBatch": 1298, "commitOffsets": 75, "getBatch": 0, "latestOffset": 8, "queryPlanning": 322,
                   "triggerExecution": 1822, "walCommit": 90},
    "eventTime": {"watermark": "2026-12-04T20:58:00.000Z", "max": "2026-12-04T21:00:00.000Z"},
    "stateOperators": [{"numRowsTotal": 15402, "numRowsDroppedByWatermark": 3}],
    "sources": [],
}


def test_the_batch_duration_and_where_it_went() -> None:
    figures = progress_figures(PROGRESS)
    assert figures["batch_duration_ms"] == 1822
    assert figures["phase_ms"] == ("addBatch=1298 commitOffsets=75 getBatch=0 latestOffset=8 queryPlanning=322 "
                                   "walCommit=90")
    assert (figures["state_rows"], figures["late_rows_dropped"], figures["stateful"]) == (15402, 3, True)
    assert (figures["batch_id"], figures["num_input_rows"]) == (7, 1149)


def test_a_progress_without_durations_has_an_empty_breakdown() -> None:
    figures = progress_figures({"name": "speed-qoe@reelytics", "batchId": 0})
    assert figures["phase_ms"] == "" and figures["batch_duration_ms"] == 0 and not figures["stateful"]


def test_kafka_lag_per_topic_from_the_source_offsets() -> None:
    import json

    sources = [{"latestOffset": {"rp.playback": {"0": 120, "1": 80}, "rp.interactions": {"0": 10}},
                "endOffset": json.dumps({"rp.playback": {"0": 100, "1": 80}, "rp.interactions": {"0": 4}})},
               {"latestOffset": {"rp.catalog": {"0": 3}}, "endOffset": {"rp.catalog": {"0": 3}}}]
    figures = progress_figures({**PROGRESS, "sources": sources})
    assert json.loads(figures["kafka_lag_by_topic"]) == {"rp.playback": 20, "rp.interactions": 6, "rp.catalog": 0}
    assert figures["kafka_lag"] == 26

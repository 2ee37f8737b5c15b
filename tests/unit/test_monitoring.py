"""Monitoring's pure parts: the speed layer's metric families from progress rows, Prometheus' configuration."""

from __future__ import annotations

import json

from infra.prometheus import config, scrape_targets
from speed_layer.monitoring import progress_metrics
from warehouse_models.settings import Settings


def _samples(rows: list[dict[str, str]], now: float) -> dict[tuple[str, str], float]:
    return {(sample.name, sample.labels.get("query", "")): sample.value
            for family in progress_metrics(rows, now=now) for sample in family.samples}


def test_progress_rows_become_per_query_gauges():
    rows = [{"name": "views", "timestamp": "2026-03-01T12:00:00.000Z", "batch_duration_ms": "1500",
             "kafka_lag": "42", "input_rows_per_second": "2000.5", "late_rows_total": "7",
             "kafka_lag_by_topic": '{"rp.playback": 40, "rp.interactions": 2}'},
            {"name": "view_end@checkpoint", "timestamp": "not a time", "state_rows": "12"}]
    started = 1772366400.0  # 2026-03-01T12:00:00Z
    samples = _samples(rows, now=started + 4.0)
    assert samples[("reelytics_speed_query_lag_seconds", "views")] == 2.5  # 4 s after it began, 1.5 s long
    assert samples[("reelytics_speed_batch_seconds", "views")] == 1.5
    assert samples[("reelytics_speed_kafka_lag_records", "views")] == 42
    assert samples[("reelytics_speed_input_rows_per_second", "views")] == 2000.5
    assert samples[("reelytics_speed_late_rows_total", "views")] == 7
    assert samples[("reelytics_speed_state_rows", "view_end")] == 12
    assert ("reelytics_speed_query_lag_seconds", "view_end") not in samples  # an unreadable time is left out
    per_topic = {sample.labels["topic"]: sample.value for family in progress_metrics(rows, now=started)
                 for sample in family.samples if sample.name == "reelytics_speed_topic_lag_records"}
    assert per_topic == {"rp.playback": 40, "rp.interactions": 2}


def test_prometheus_scrapes_every_metrics_endpoint_from_the_settings():
    settings = Settings(serving_port=18080, collector_port=18081, speed_metrics_port=18082)
    document = json.loads(config(settings))
    assert scrape_targets(settings) == {"api": "127.0.0.1:18080", "collector": "127.0.0.1:18081",
                                        "speed": "127.0.0.1:18082"}
    assert {job["job_name"]: job["static_configs"][0]["targets"] for job in document["scrape_configs"]} == {
        "api": ["127.0.0.1:18080"], "collector": ["127.0.0.1:18081"], "speed": ["127.0.0.1:18082"]}

"""Prometheus (Debian's server, started as `reelytics up` starts it) scrapes the API and the speed layer, and
`reelytics status` reads the same figures back."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
from rich.console import Console

from infra import prometheus
from infra.process import free_port
from reelytics.commands.services import _pipeline_table
from serving.api.auth import create_key
from serving.api.service import API
from speed_layer.monitoring import serve_metrics
from warehouse_models.settings import Settings


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_prometheus_scrapes_the_api_and_the_speed_layer(redis_service, isolated: Settings, tmp_path):
    settings = isolated.model_copy(update={
        "serving_port": free_port(), "speed_metrics_port": free_port(), "prometheus_port": free_port(),
        "collector_port": free_port(), "data_dir": tmp_path / "data"})
    client = settings.redis_client()
    # The speed layer's progress row as its writer leaves it, one second old.
    client.hset(settings.keys.speed_progress("views"), mapping={
        "name": "views", "timestamp": datetime.now(timezone.utc).isoformat(), "batch_duration_ms": "250",
        "kafka_lag": "17", "kafka_lag_by_topic": '{"playback": 12, "interactions": 5}'})
    client.sadd(settings.keys.speed_queries(), "views")
    try:
        API.start(settings)
        serve_metrics(settings)
        prometheus.start(settings)
        key = create_key(client, settings.keys, name="ops", scopes=["admin"])
        with httpx.Client(base_url=API.url(settings), headers={"X-API-Key": key}, timeout=10) as http:
            for _ in range(20):
                assert http.get("/v1/freshness").status_code == 200
            denied = http.post("/v1/playback/authorize",
                               json={"account_id": "acc-1", "session_id": "s", "device_type": "tv"})
            assert denied.status_code == 200

        found = _until(lambda: prometheus.query(
            settings, 'reelytics_api_request_seconds_count{route="/v1/freshness",status="200"}'), 30, "the API's")
        assert found[0][1] == 20
        lag = _until(lambda: prometheus.query(settings, "reelytics_speed_kafka_lag_records"), 30, "the speed layer's")
        assert [(labels["query"], value) for labels, value in lag] == [("views", 17.0)]
        by_topic = prometheus.query(settings, "reelytics_speed_topic_lag_records")
        assert {(labels["query"], labels["topic"]): value for labels, value in by_topic} == {
            ("views", "playback"): 12.0, ("views", "interactions"): 5.0}
        assert {labels["job"]: value for labels, value in prometheus.query(settings, "up")}["api"] == 1.0

        console = Console(record=True, width=200)
        console.print(_pipeline_table(settings))
        text = console.export_text()
        assert "API requests / s" in text and "query=views" in text and "Prometheus not answering" not in text
    finally:
        prometheus.stop(settings)
        API.stop(settings)
        for key_name in client.scan_iter(match=settings.keys.pattern()):
            client.delete(key_name)
        client.close()

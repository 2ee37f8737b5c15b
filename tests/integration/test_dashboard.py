"""The live dashboard in Debian's headless Chromium: its numbers move while simulated players' events arrive."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from infra.process import free_port
from serving.api.auth import create_key
from serving.api.service import API
from simulator import SimulationConfig, simulate
from speed_layer.job import views
from speed_layer.query import SinkContext
from speed_layer.source import events_frame
from warehouse_models.settings import Settings

SHOWN = ("streams-playing", "denied-minute", "alerts-open")
"""The dashboard's number tiles, by element id."""


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Debian's chromium is not installed: run `bash infra/install.sh`")
    return found


def _browse(url: str, *extra: str) -> str:
    """Open the page in headless Chromium, let it fetch and draw for a few seconds of page time, return the DOM."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--window-size=1500,1100", "--virtual-time-budget=6000", *extra, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _tiles(dom: str) -> dict[str, str]:
    return {name: re.search(rf'id="{name}">([^<]*)<', dom).group(1) for name in SHOWN}  # type: ignore[union-attr]


def _through_speed_writers(spark: Any, settings: Settings, events: list[dict[str, Any]], batch_id: int) -> None:
    frame = events_frame(spark, events)
    for view in views(["trending", "concurrency", "ctr", "engagement", "spikes"]):
        view.write(frame, SinkContext(settings=settings, client=settings.redis_client(), keys=settings.keys,
                                      query_name=f"views/{view.name}", batch_id=batch_id))


def test_the_dashboard_moves_while_the_players_post(redis_service, isolated: Settings, spark, tmp_path: Path):
    settings = isolated.model_copy(update={"serving_port": free_port(), "data_dir": tmp_path / "data"})
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    config = SimulationConfig(start=end - timedelta(minutes=10), duration=timedelta(minutes=10), users=300,
                              titles=40, channels=4, sessions_per_user_hour=3.0, sharer_share=0.2, seed=5)
    events = list(simulate(config))
    early = [e for e in events if e["event_timestamp"] < (end - timedelta(minutes=7)).isoformat()]
    client = settings.redis_client()
    key = create_key(client, settings.keys, name="ops", scopes=["admin"])
    url = API.url(settings, f"/dashboard#key={key}")
    try:
        API.start(settings)
        _through_speed_writers(spark, settings, early, batch_id=0)
        before = _tiles(_browse(url, "--dump-dom"))
        _through_speed_writers(spark, settings, events, batch_id=1)
        dom = _browse(url, "--dump-dom")
        after = _tiles(dom)
        assert before != after, (before, after)
        assert int(after["streams-playing"].replace(",", "")) > 0
        assert 'id="updated-at">-<' not in dom  # the page fetched and drew at least once
        shot = tmp_path / "dashboard.png"
        _browse(url, f"--screenshot={shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        API.stop(settings)
        for name in client.scan_iter(match=settings.keys.pattern()):
            client.delete(name)
        client.close()

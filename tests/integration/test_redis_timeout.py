"""A Redis that stops answering fails the layers' writes with a timeout instead of hanging them: a real Redis of
its own, paused with SIGSTOP (as a stalled host or a connection cut without a reset looks to a client)."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from infra import redis as embedded_redis
from infra.process import free_port
from speed_layer.resume import set_if_newer
from warehouse_models.settings import Settings


def test_a_paused_redis_fails_a_writer_within_the_timeout_and_the_client_recovers(service_settings: Settings,
                                                                                  tmp_path):
    settings = service_settings.model_copy(update={
        "redis_url": f"redis://127.0.0.1:{free_port()}/0", "data_dir": tmp_path / "data",
        "redis_key_prefix": "paused", "redis_timeout_seconds": 1.0})
    embedded_redis.start(settings)
    pid = embedded_redis.managed_pid(settings)
    assert pid is not None
    client, keys = settings.redis_client(lean=True), settings.keys
    try:
        positions = {"u1": {"vod-1": (1_000, 12.5)}}
        set_if_newer(client, keys, positions)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                set_if_newer(client, keys, {"u1": {"vod-1": (2_000, 30.0)}})
            waited = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        assert 0.9 <= waited < 5, waited
        set_if_newer(client, keys, {"u1": {"vod-1": (3_000, 45.0)}})  # a new connection, the same client
        assert client.hget(keys.resume_position("u1"), "vod-1").startswith(b"3000:")
    finally:
        client.close()
        embedded_redis.stop(settings)

"""Every Redis client the settings make carries `redis_timeout_seconds` (no connection is opened here)."""

from __future__ import annotations

import pytest

from warehouse_models.settings import Settings


@pytest.mark.parametrize("lean", [False, True])
def test_blocking_clients_time_out_by_default(lean: bool) -> None:
    kwargs = Settings().redis_client(lean=lean).connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (30.0, 30.0)


def test_the_setting_moves_every_client_and_an_asyncio_option_wins() -> None:
    settings = Settings(redis_timeout_seconds=2.5)
    assert settings.redis_client(db=3).connection_pool.connection_kwargs["socket_timeout"] == 2.5
    assert settings.redis_async_client().connection_pool.connection_kwargs["socket_timeout"] == 2.5
    chosen = settings.redis_async_client(socket_timeout=0.5).connection_pool.connection_kwargs
    assert (chosen["socket_timeout"], chosen["socket_connect_timeout"]) == (0.5, 2.5)


def test_a_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="redis_timeout_seconds"):
        Settings(redis_timeout_seconds=0)

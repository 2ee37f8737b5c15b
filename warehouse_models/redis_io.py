"""Small helpers the views' writers and readers share: Redis replies as text, epoch ms as UTC, scripts, buckets."""

from __future__ import annotations

import math
import weakref
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from warehouse_models.events import MAX_CLOCK_SKEW
from warehouse_models.redis_keys import HOUR_SECONDS, SPEED_BUCKET_SECONDS, SPEED_BUCKET_TTL_SECONDS, bucket_start

if TYPE_CHECKING:
    import redis


def text(value: bytes | str) -> str:
    """A Redis reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


def utc_from_ms(ms: int) -> datetime:
    """Epoch milliseconds -> an aware UTC datetime, exact to the millisecond."""
    # Whole seconds plus a timedelta: a float division could round the milliseconds.
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc) + timedelta(milliseconds=ms % 1000)


def window_buckets(start: float, end: float) -> range:
    """The minute buckets that lie wholly inside ``[start, end)`` (epoch seconds)."""
    first = math.ceil(start / SPEED_BUCKET_SECONDS) * SPEED_BUCKET_SECONDS
    return range(first, int(end) - SPEED_BUCKET_SECONDS + 1, SPEED_BUCKET_SECONDS)


def live_hour_starts(now: float) -> range:
    """The hours whose speed aggregates may still be in Redis: from :data:`SPEED_BUCKET_TTL_SECONDS` back (older
    ones have expired) to the hour the clock skew the envelope allows reaches (epoch seconds, hour starts)."""
    return range(bucket_start(now - SPEED_BUCKET_TTL_SECONDS, HOUR_SECONDS),
                 bucket_start(now + MAX_CLOCK_SKEW.total_seconds(), HOUR_SECONDS) + HOUR_SECONDS, HOUR_SECONDS)


class ClientScript:
    """A Lua script registered once per Redis client: ``script(client)`` is the callable ``Script``."""

    def __init__(self, lua: str) -> None:
        self.lua = lua
        self._registered: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def __call__(self, client: redis.Redis) -> Any:
        """The script registered on ``client`` (registered now on first use)."""
        script = self._registered.get(client)
        if script is None:
            script = self._registered[client] = client.register_script(self.lua)
        return script

"""How a published batch version is read: the pointer, the meta hash's watermark W, and one view hash.

The batch layer writes versions (``batch_layer.publish.versioned``); the serving layer and the publisher both
resolve the pointer the same way, through these functions, so "the current version" has one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse_models.redis_io import text
from warehouse_models.redis_keys import KeyLayout

if TYPE_CHECKING:
    import redis


class BatchVersionMissing(RuntimeError):
    """The pointer names a version whose meta hash is gone; the message says what to do."""


@dataclass(frozen=True)
class BatchRead:
    """A batch view's value together with the version and watermark it belongs to."""

    version: str
    watermark: int
    """W, epoch seconds: the value counts exactly the events before it."""
    values: dict[str, Any]


def _missing(version: str) -> BatchVersionMissing:
    return BatchVersionMissing(f"batch version {version} has no meta hash (expired or deleted): run the "
                               "batch_views_redis asset again to publish a new version")


def current_version(client: redis.Redis, keys: KeyLayout) -> tuple[str, int] | None:
    """The current batch version and its watermark W (epoch seconds); None before the first publication."""
    raw = client.get(keys.batch_pointer())
    if raw is None:
        return None
    version = text(raw)
    watermark = client.hget(keys.batch_meta(version), "watermark")
    if watermark is None:
        raise _missing(version)
    return version, int(text(watermark))


def read_version_hash(client: redis.Redis, keys: KeyLayout,
                      key_of: Callable[[str], str]) -> tuple[str, int, dict[str, str]] | None:
    """The hash ``key_of(version)`` of the current version with the version and W; None before any publication.

    Two round trips: the pointer, then the meta's W and the hash together, so both come from the same version.
    """
    raw = client.get(keys.batch_pointer())
    if raw is None:
        return None
    version = text(raw)
    pipe = client.pipeline(transaction=False)
    pipe.hget(keys.batch_meta(version), "watermark")
    pipe.hgetall(key_of(version))
    watermark, fields = pipe.execute()
    if watermark is None:
        raise _missing(version)
    return version, int(text(watermark)), {text(k): text(v) for k, v in fields.items()}

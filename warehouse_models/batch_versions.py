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
from warehouse_models.redis_plan import Command, Plan, run

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


def version_missing(version: str) -> BatchVersionMissing:
    return BatchVersionMissing(f"batch version {version} has no meta hash (expired or deleted): run the "
                               "batch_views_redis asset again to publish a new version")


def current_version_plan(keys: KeyLayout) -> Plan[tuple[str, int] | None]:
    """The current batch version and its watermark W (epoch seconds); None before the first publication."""
    (raw,) = yield [Command("GET", keys.batch_pointer())]
    if raw is None:
        return None
    version = text(raw)
    (watermark,) = yield [Command("HGET", keys.batch_meta(version), "watermark")]
    if watermark is None:
        raise version_missing(version)
    return version, int(text(watermark))


def current_version(client: redis.Redis, keys: KeyLayout) -> tuple[str, int] | None:
    """:func:`current_version_plan` with a blocking client."""
    return run(client, current_version_plan(keys))


def version_hash_plan(keys: KeyLayout, key_of: Callable[[str], str]) -> Plan[tuple[str, int, dict[str, str]] | None]:
    """The hash ``key_of(version)`` of the current version with the version and W; None before any publication.

    Two round trips: the pointer, then the meta's W and the hash together, so both come from the same version.
    """
    (raw,) = yield [Command("GET", keys.batch_pointer())]
    if raw is None:
        return None
    version = text(raw)
    watermark, fields = yield [Command("HGET", keys.batch_meta(version), "watermark"),
                               Command("HGETALL", key_of(version))]
    if watermark is None:
        raise version_missing(version)
    return version, int(text(watermark)), {text(k): text(v) for k, v in fields.items()}


def read_version_hash(client: redis.Redis, keys: KeyLayout,
                      key_of: Callable[[str], str]) -> tuple[str, int, dict[str, str]] | None:
    """:func:`version_hash_plan` with a blocking client."""
    return run(client, version_hash_plan(keys, key_of))

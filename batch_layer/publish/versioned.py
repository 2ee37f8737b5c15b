"""The versioned write: batch views go to Redis under a new version, and readers switch with one pointer SET.

A publication writes every view's hashes under a fresh version id (pipelined in chunks, each key with a TTL so
a publication that dies half-way leaves nothing behind for long), then the version's meta hash (the watermark
W, when it was published, rows per view), then swaps :meth:`~warehouse_models.redis_keys.KeyLayout.batch_pointer`
to the new version in one ``SET``. Readers resolve the pointer first and read only that version, so they see
the old version whole or the new one whole, never a mix. After the swap the new version's keys lose their TTL
(it lives as long as it is current) and the previous version's keys expire after
:data:`~warehouse_models.redis_keys.BATCH_VIEW_TTL_SECONDS`, so a reader that resolved the pointer just before
the swap still finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from warehouse_models.redis_io import text
from warehouse_models.redis_keys import BATCH_VIEW_TTL_SECONDS, KeyLayout

if TYPE_CHECKING:
    import redis
    from redis.typing import EncodableT, FieldT

logger = logging.getLogger(__name__)

CHUNK_KEYS = 1000
"""Hashes per pipeline: few round trips, yet no single huge request that blocks Redis for other clients."""

_HOUR = timedelta(hours=1)

Entry = tuple[str, Mapping[str, Any]]
"""One hash of a view: its key and the fields to set."""


class PublishError(RuntimeError):
    """A publication could not be made; the message says what to do."""


@dataclass(frozen=True)
class Publication:
    """What one publication wrote."""

    version: str
    watermark: int
    """W, epoch seconds: every event before it is in the views."""
    published_at: datetime
    previous_version: str | None
    rows: dict[str, int] = field(default_factory=dict)
    """Rows (hashes or hash fields, as each view counts them) per view."""
    seconds: float = 0.0



def watermark_of(hours: Iterable[datetime], *, now: datetime) -> datetime:
    """W: the exclusive end of the newest closed hour among the hours the batch layer has rebuilt.

    Args:
        hours: rebuilt event hours (aware; any time within an hour names it).
        now: the clock; an hour is closed once its end is at or before ``now``.

    Raises:
        PublishError: no closed hour among them (nothing may be published as complete yet).
    """
    ends = []
    for hour in hours:
        if hour.tzinfo is None:
            raise ValueError(f"{hour!r} has no time zone; pass aware UTC times")
        end = hour.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0) + _HOUR
        if end <= now:
            ends.append(end)
    if not ends:
        raise PublishError("no closed hour has been rebuilt yet: materialize fact_stream_events for an hour that "
                           "has ended, then publish")
    return max(ends)


def version_id(watermark: int, published_at: datetime) -> str:
    """A version id that sorts by watermark, then publication time, and holds no ``:`` (it sits inside keys).

    ``w<W epoch s>-p<published_at epoch ms>``, e.g. ``w1763924400-p1763924731123``.
    """
    if published_at.tzinfo is None:
        raise ValueError(f"{published_at!r} has no time zone; pass an aware UTC time")
    return f"w{int(watermark)}-p{round(published_at.timestamp() * 1000)}"


def meta_fields(*, watermark: int, published_at: datetime, rows: Mapping[str, int]) -> dict[str, str | int]:
    """The meta hash of a version: ``watermark``, ``published_at`` (ISO UTC) and ``rows:<view>`` per view."""
    fields: dict[str, str | int] = {
        "watermark": int(watermark),
        "published_at": published_at.astimezone(timezone.utc).isoformat(),
    }
    fields.update({f"rows:{view}": int(count) for view, count in rows.items()})
    return fields


def _hash_fields(fields: Mapping[str, Any]) -> dict[FieldT, EncodableT]:
    """A hash's fields as redis-py's HSET takes them."""
    return {name: value for name, value in fields.items()}


def chunks(entries: Iterable[Entry], size: int = CHUNK_KEYS) -> Iterator[list[Entry]]:
    """The entries in lists of at most ``size``."""
    chunk: list[Entry] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _scan_version(client: redis.Redis, keys: KeyLayout, version: str) -> list[Any]:
    return list(client.scan_iter(match=keys.batch_version_pattern(version), count=CHUNK_KEYS))


def _set_ttl(client: redis.Redis, found: list[Any], ttl: int | None) -> None:
    """EXPIRE (or PERSIST when ``ttl`` is None) every key, one pipeline per chunk."""
    for start in range(0, len(found), CHUNK_KEYS):
        pipe = client.pipeline(transaction=False)
        for key in found[start:start + CHUNK_KEYS]:
            if ttl is None:
                pipe.persist(key)
            else:
                pipe.expire(key, ttl)
        pipe.execute()


def publish_version(client: redis.Redis, keys: KeyLayout, views: Mapping[str, Callable[[str], Iterable[Entry]]], *,
                    watermark: int, published_at: datetime | None = None, chunk_size: int = CHUNK_KEYS,
                    on_chunk: Callable[[str, int], None] | None = None) -> Publication:
    """Write the views under a new version, its meta, then swap the pointer; return what was written.

    Args:
        views: view name -> a function of the new version id giving the view's ``(key, fields)`` entries
            (the id is made here, so the keys are built here too). Several entries may name one key: their
            fields are merged (``HSET``).
        watermark: W (epoch seconds).
        published_at: the publication time (default now).
        on_chunk: called with (view, hashes written so far) after each pipeline: progress, and a hook for tests
            that read while a publication is in flight.
    """
    started = time.monotonic()
    at = published_at or datetime.now(timezone.utc)
    version = version_id(watermark, at)
    rows: dict[str, int] = {}
    for view, entries_of in views.items():
        written = 0
        for chunk in chunks(entries_of(version), chunk_size):
            pipe = client.pipeline(transaction=False)
            for key, fields in chunk:
                if fields:
                    pipe.hset(key, mapping=_hash_fields(fields))
                    pipe.expire(key, BATCH_VIEW_TTL_SECONDS)
            pipe.execute()
            written += len(chunk)
            if on_chunk is not None:
                on_chunk(view, written)
        rows[view] = written
        logger.info("batch version %s: %s written (%d hashes)", version, view, written)
    meta = keys.batch_meta(version)
    pipe = client.pipeline(transaction=False)
    pipe.hset(meta, mapping=_hash_fields(meta_fields(watermark=watermark, published_at=at, rows=rows)))
    pipe.expire(meta, BATCH_VIEW_TTL_SECONDS)
    pipe.execute()
    # The one write readers switch on; GET returns the version it replaced, atomically.
    previous_raw = client.set(keys.batch_pointer(), version, get=True)
    previous = text(previous_raw) if isinstance(previous_raw, (str, bytes)) else None
    _set_ttl(client, _scan_version(client, keys, version), None)
    if previous is not None and previous != version:
        _set_ttl(client, _scan_version(client, keys, previous), BATCH_VIEW_TTL_SECONDS)
    seconds = round(time.monotonic() - started, 3)
    logger.info("batch version %s (W=%d) is current, replacing %s, in %.1f s", version, watermark, previous, seconds)
    return Publication(version=version, watermark=int(watermark), published_at=at, previous_version=previous,
                       rows=rows, seconds=seconds)



"""Publish a model version: Redis (what the API serves, behind one pointer swap) and the gold Delta tables.

Redis, per version (keys of :class:`~warehouse_models.redis_keys.KeyLayout`):

- ``model_items``: ``bundle`` (an ``.npz`` of :data:`~warehouse_models.recommendations.BUNDLE_ARRAYS`), ``meta``
  (JSON: version, data range, metrics) and ``affinity`` (an ``.npz`` of
  :data:`~warehouse_models.recommendations.AFFINITY_ARRAYS`, what release notifications match against);
- ``model_user`` per user: ``factors`` (float32 bytes), ``seen`` (JSON ``[[title, weight], ...]``), ``recs`` (JSON
  ``[[title, score, because title or ""], ...]``) and ``segment``;
- ``model_similar`` per title: JSON ``[[title, cosine], ...]``.

Keys are written with a TTL, then :meth:`~warehouse_models.redis_keys.KeyLayout.model_pointer` is swapped in one
``SET``, the new keys lose their TTL and the previous version's keys expire after
:data:`~warehouse_models.redis_keys.MODEL_TTL_SECONDS` (a reader that resolved the old pointer still finds them).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from batch_layer.models.registry import ModelVersion
from warehouse_models.recommendations import AFFINITY_ARRAYS, BUNDLE_ARRAYS, RECS_SIMILAR_TITLES, RECS_USER_TOP_N
from warehouse_models.redis_io import text
from warehouse_models.redis_keys import MODEL_TTL_SECONDS, KeyLayout

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

CHUNK = 1000


def bundle_bytes(arrays: dict[str, np.ndarray], names: tuple[str, ...] = BUNDLE_ARRAYS) -> bytes:
    out = io.BytesIO()
    np.savez(out, **{name: arrays[name] for name in names})  # type: ignore[arg-type]
    return out.getvalue()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def user_entries(arrays: dict[str, np.ndarray]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Per user: the fields of its model hash."""
    items = arrays["item_ids"]
    indptr, indices, values = arrays["seen_indptr"], arrays["seen_indices"], arrays["seen_values"]
    for row, user in enumerate(arrays["user_ids"]):
        span = slice(indptr[row], indptr[row + 1])
        seen = [[str(items[c]), round(float(v), 4)] for c, v in zip(indices[span], values[span], strict=True)]
        recs = [[str(items[c]), round(float(s), 5), str(items[b]) if b >= 0 else ""]
                for c, s, b in zip(arrays["rec_items"][row], arrays["rec_scores"][row], arrays["rec_because"][row],
                                   strict=True) if c >= 0]
        yield str(user), {"factors": arrays["user_factors"][row].astype(np.float32).tobytes(), "seen": _json(seen),
                          "recs": _json(recs), "segment": str(arrays["user_segments"][row])}


def similar_entries(arrays: dict[str, np.ndarray]) -> Iterator[tuple[str, str]]:
    items = arrays["item_ids"]
    for row, content in enumerate(items):
        yield str(content), _json([[str(items[c]), round(float(s), 5)]
                                   for c, s in zip(arrays["similar_items"][row], arrays["similar_scores"][row],
                                                   strict=True)])


def publish_redis(client: redis.Redis, keys: KeyLayout, model: ModelVersion, *,
                  on_progress: Callable[[str], None] = logger.info,
                  arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Write a version's keys, swap the pointer to it, and age out the previous version's keys."""
    started = time.monotonic()
    version = model.version
    arrays = arrays if arrays is not None else model.arrays()
    meta = {"version": version, **{k: model.manifest.get(k) for k in ("trained_at", "data_from", "data_to",
                                                                         "metrics", "params")}}
    pipe = client.pipeline(transaction=False)
    items_key = keys.model_items(version)
    pipe.hset(items_key, mapping={"bundle": bundle_bytes(arrays), "meta": _json(meta),
                                  "affinity": bundle_bytes(arrays, AFFINITY_ARRAYS)})
    pipe.expire(items_key, MODEL_TTL_SECONDS)
    pipe.execute()
    users = _write_chunks(client, ((keys.model_user(version, u), f) for u, f in user_entries(arrays)), hashes=True)
    on_progress(f"model {version}: {users} user hashes written")
    similar = _write_chunks(client, ((keys.model_similar(version, c), v) for c, v in similar_entries(arrays)),
                            hashes=False)
    on_progress(f"model {version}: {similar} similar-title lists written")
    previous_raw = client.set(keys.model_pointer(), version, get=True)
    previous = text(previous_raw) if isinstance(previous_raw, (str, bytes)) else None
    _ttl(client, keys.model_version_pattern(version), None)
    if previous is not None and previous != version:
        _ttl(client, keys.model_version_pattern(previous), MODEL_TTL_SECONDS)
    seconds = round(time.monotonic() - started, 3)
    on_progress(f"model {version} is current in Redis (replacing {previous}) after {seconds:.1f} s")
    return {"users": users, "similar": similar, "previous": previous, "seconds": seconds}


def _write_chunks(client: redis.Redis, entries: Iterator[tuple[str, Any]], *, hashes: bool) -> int:
    written = 0
    pipe = client.pipeline(transaction=False)
    for key, value in entries:
        if hashes:
            pipe.hset(key, mapping=value)
        else:
            pipe.set(key, value)
        pipe.expire(key, MODEL_TTL_SECONDS)
        written += 1
        if written % CHUNK == 0:
            pipe.execute()
            pipe = client.pipeline(transaction=False)
    pipe.execute()
    return written


def _ttl(client: redis.Redis, pattern: str, ttl: int | None) -> None:
    batch: list[Any] = []
    for key in client.scan_iter(match=pattern, count=CHUNK):
        batch.append(key)
        if len(batch) >= CHUNK:
            _apply_ttl(client, batch, ttl)
            batch = []
    _apply_ttl(client, batch, ttl)


def _apply_ttl(client: redis.Redis, found: list[Any], ttl: int | None) -> None:
    if not found:
        return
    pipe = client.pipeline(transaction=False)
    for key in found:
        if ttl is None:
            pipe.persist(key)
        else:
            pipe.expire(key, ttl)
    pipe.execute()


def delta_tables(model: ModelVersion, arrays: dict[str, np.ndarray] | None = None) -> dict[str, pa.Table]:
    """The version's gold tables as Arrow: top titles per user, similar titles per title."""
    import pyarrow as pa

    arrays = arrays if arrays is not None else model.arrays()
    items = arrays["item_ids"].astype(object)
    generated = datetime.fromisoformat(str(model.manifest["trained_at"])).astimezone(timezone.utc)
    top = arrays["rec_items"]
    n_users, n = top.shape
    filled = top.ravel() >= 0  # -1: a user with fewer other titles than places
    because = arrays["rec_because"].ravel()[filled]
    rows = int(filled.sum())
    recs = pa.table({
        "model_version": pa.array([model.version] * rows, pa.string()),
        "user_id": pa.array(np.repeat(arrays["user_ids"].astype(object), n)[filled], pa.string()),
        "rank": pa.array(np.tile(np.arange(1, n + 1, dtype=np.int32), n_users)[filled], pa.int32()),
        "content_id": pa.array(items[top.ravel()[filled]], pa.string()),
        "score": pa.array(arrays["rec_scores"].ravel()[filled].astype(np.float64), pa.float64()),
        "because_content_id": pa.array(np.where(because >= 0, items[np.maximum(because, 0)], None), pa.string()),
        "generated_at": pa.array([generated] * rows, pa.timestamp("us", tz="UTC")),
    }, schema=RECS_USER_TOP_N.arrow_schema())
    similar = arrays["similar_items"]
    n_items, k = similar.shape
    sims = pa.table({
        "model_version": pa.array([model.version] * (n_items * k), pa.string()),
        "content_id": pa.array(np.repeat(items, k), pa.string()),
        "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n_items), pa.int32()),
        "similar_content_id": pa.array(items[similar.ravel()], pa.string()),
        "score": pa.array(arrays["similar_scores"].ravel().astype(np.float64), pa.float64()),
    }, schema=RECS_SIMILAR_TITLES.arrow_schema())
    return {RECS_USER_TOP_N.name: recs, RECS_SIMILAR_TITLES.name: sims}


def publish_delta(settings: Settings, model: ModelVersion,
                  arrays: dict[str, np.ndarray] | None = None) -> dict[str, int]:
    """Replace the gold recommendation tables with the version's rows (one Delta commit each)."""
    from deltalake import write_deltalake

    from batch_layer.analyst import deltalake_uri

    rows = {}
    tables = delta_tables(model, arrays)
    for spec in (RECS_USER_TOP_N, RECS_SIMILAR_TITLES):
        table = tables[spec.name]
        write_deltalake(deltalake_uri(spec.path(settings.delta_root_uri)), table, mode="overwrite",
                        schema_mode="overwrite")
        rows[spec.name] = table.num_rows
    return rows

"""API keys with scopes, stored hashed in Redis, and a rate limit per key.

A key is ``rk_`` and 43 URL-safe characters (256 random bits); Redis keeps only its SHA-256
(:meth:`~warehouse_models.redis_keys.KeyLayout.api_key`), with a unique name, its scopes and optionally its own
rate. Clients send it in the ``X-API-Key`` header.

Scopes:

* ``read``: an app reads the views of the user, title, rail or slice it names;
* ``playback``: ``POST /v1/playback/authorize``;
* ``admin``: everything, including data across accounts (alerts, an account's streams, authorize counts, the
  dashboard).

Each API process remembers a key's record for :data:`KEY_CACHE_SECONDS` (a revoked key stops working within that
long) and limits each key with a token bucket (``rate_per_second``, bursts up to twice that).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis

from warehouse_models.redis_io import text
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.redis_plan import Command, Plan

SCOPES = ("read", "playback", "admin")
KEY_PREFIX = "rk_"
KEY_CACHE_SECONDS = 5.0
"""How long an API process trusts what it read of a key (revocations take effect within this)."""


class ApiKeyError(ValueError):
    """A key could not be created or revoked; the message says why."""


@dataclass(frozen=True)
class ApiKey:
    """What Redis holds for one key (never the key itself)."""

    name: str
    scopes: frozenset[str]
    rate_per_second: float | None
    created_at: str

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def digest(key: str) -> str:
    """The SHA-256 (hex) a key is stored under. Keys are 256 random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(client: redis.Redis, keys: KeyLayout, *, name: str, scopes: list[str],
               rate_per_second: float | None = None) -> str:
    """Store a new key under ``name`` and return it (shown once; only its hash is kept)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ApiKeyError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    if not name or any(c.isspace() for c in name):
        raise ApiKeyError("a key name is one word, for example 'tv-app' or 'ops-dashboard'")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    hashed = digest(key)
    fields: dict[Any, Any] = {"name": name, "scopes": ",".join(sorted(set(scopes))),
              "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if rate_per_second is not None:
        fields["rate_per_second"] = repr(float(rate_per_second))
    if not client.hsetnx(keys.api_key_names(), name, hashed):
        raise ApiKeyError(f"a key named {name!r} exists; revoke it first (`reelytics api keys revoke {name}`) or "
                        "choose another name")
    client.hset(keys.api_key(hashed), mapping=fields)
    return key


def revoke_key(client: redis.Redis, keys: KeyLayout, name: str) -> bool:
    """Delete the key named ``name``; False when there is none."""
    hashed = client.hget(keys.api_key_names(), name)
    if hashed is None:
        return False
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.api_key(text(hashed)))
    pipe.hdel(keys.api_key_names(), name)
    pipe.execute()
    return True


def list_keys(client: redis.Redis, keys: KeyLayout) -> list[ApiKey]:
    """Every key's record (names, scopes, rates; never the keys), by name."""
    out = []
    for _name, hashed in sorted(client.hgetall(keys.api_key_names()).items()):
        found = _decode(client.hgetall(keys.api_key(text(hashed))))
        if found is not None:
            out.append(found)
    return out


def _decode(fields: dict[bytes | str, bytes | str]) -> ApiKey | None:
    if not fields:
        return None
    values = {text(k): text(v) for k, v in fields.items()}
    rate = values.get("rate_per_second")
    return ApiKey(name=values.get("name", "?"), scopes=frozenset(filter(None, values.get("scopes", "").split(","))),
                  rate_per_second=float(rate) if rate else None, created_at=values.get("created_at", ""))


@dataclass
class KeyCache:
    """Key records by key, each trusted for :data:`KEY_CACHE_SECONDS` (unknown keys too, so a client that
    hammers with a bad key costs one Redis read per interval). Looking a key up costs a dictionary read, not a
    hash: the API checks a key on every request."""

    ttl: float = KEY_CACHE_SECONDS
    _entries: dict[str, tuple[float, ApiKey | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, key: str) -> tuple[bool, ApiKey | None]:
        """``(True, record)`` when this process read the key's record less than ``ttl`` ago (no I/O)."""
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return True, entry[1]
        return False, None

    def remember(self, key: str, found: ApiKey | None) -> None:
        """Keep what was read of a key (None: unknown) for ``ttl`` seconds."""
        with self._lock:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), found)


def key_record(keys: KeyLayout, key: str) -> Plan[ApiKey | None]:
    """The record Redis holds for a key (by its digest), None when unknown or revoked."""
    (fields,) = yield [Command("HGETALL", keys.api_key(digest(key)))]
    return _decode(fields)


@dataclass
class RateLimiter:
    """A token bucket per key name: ``rate`` tokens a second, at most ``2 * rate`` saved up (at least one)."""

    default_rate: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, name: str, rate: float | None = None, *, now: float | None = None) -> float:
        """Take one token; return 0.0 when the request may go on, else the seconds until one is available."""
        per_second = rate or self.default_rate
        capacity = max(1.0, 2 * per_second)  # a slow key still gets its one request now and then
        clock = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(name, (capacity, clock))
            tokens = min(capacity, tokens + (clock - at) * per_second)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, clock)
                return 0.0
            self._buckets[name] = (tokens, clock)
            return (1.0 - tokens) / per_second

"""The batch + speed merge, as pure functions (no Redis here).

Additive views answer ``batch(W) + speed(windows >= W)``: the batch view counts exactly the events before its
watermark W and the speed reader is asked only for the windows that start at or after W, so no event is
counted twice or missed (while the speed buckets still hold W: they live ``SPEED_BUCKET_TTL_SECONDS``).
Latest-value views take the newest value by event time, whichever layer has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from warehouse_models.batch_versions import BatchRead
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS

T = TypeVar("T")


@dataclass(frozen=True)
class Freshness:
    """What an answer is made of and how fresh each part is; every API answer carries it."""

    layers: tuple[str, ...]
    """The layers that answered: ``batch``, ``speed`` or both."""
    watermark: datetime | None
    """W, the batch part's ``as_of``: it counts exactly the events before W. None without a batch part."""
    batch_version: str | None
    speed_lag_seconds: float | None
    """How long ago the speed layer's shared query finished its newest micro-batch (None: no progress known)."""
    speed_kafka_lag: int | None
    """Records the speed layer had not read yet at that batch."""
    complete: bool
    """False when the batch part is older than the speed buckets' lifetime: events between W and the oldest
    live bucket are missing until the batch layer publishes again."""


def speed_since(batch: BatchRead | None) -> int | None:
    """Where the speed part starts: W when there is a batch part, else every live bucket (None)."""
    return batch.watermark if batch is not None else None


def is_complete(batch: BatchRead | None, *, now: float) -> bool:
    """Whether batch(W) + speed(>= W) covers every event: the speed buckets from W on have not expired."""
    return batch is not None and now - batch.watermark < SPEED_BUCKET_TTL_SECONDS


def add_counts(batch: Mapping[str, float] | None, speed: Mapping[str, float], names: Sequence[str]
               ) -> dict[str, float]:
    """``batch + speed`` for each named count (a missing part or name counts 0)."""
    return {name: (batch or {}).get(name, 0) + speed.get(name, 0) for name in names}


def newest_by_event_time(candidates: Iterable[tuple[datetime, T] | None]) -> T | None:
    """The value with the newest event time among the layers' candidates (None entries: a layer without one);
    ties keep the first candidate given."""
    best: tuple[datetime, T] | None = None
    for candidate in candidates:
        if candidate is not None and (best is None or candidate[0] > best[0]):
            best = candidate
    return best[1] if best is not None else None


def epoch_to_utc(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, tz=timezone.utc) if seconds is not None else None


def daily_totals(batch_days: Mapping[str, Mapping[str, int]], speed_hours: Mapping[int, Mapping[str, int]],
                 names: Sequence[str], *, days: int, now: float) -> dict[str, dict[str, int]]:
    """Per UTC date, the last ``days`` dates up to ``now``'s (oldest first, zeros for a date without events):
    the batch view's totals of the date (its events before W) + the speed layer's hours from W on that date.

    An hour counts on the date it starts (hours never cross midnight UTC); a missing part or name counts 0.
    """
    today = datetime.fromtimestamp(now, tz=timezone.utc).date()
    dates = [(today - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
    out = {day: {m: int((batch_days.get(day) or {}).get(m, 0)) for m in names} for day in dates}
    for hour, values in speed_hours.items():
        day = datetime.fromtimestamp(hour, tz=timezone.utc).date().isoformat()
        if day in out:
            for m in names:
                out[day][m] += int(values.get(m, 0))
    return out

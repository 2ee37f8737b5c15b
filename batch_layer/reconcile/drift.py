"""Pure parts of the reconciliation: which hours to compare, the drift of one view metric, the ones over a limit.

Per (hour, view, metric) over the keys either layer has (users, rail/buttons, QoE slices):
``absolute_drift = sum_k |speed_k - batch_k|`` (per key, so a missing user cannot hide behind an extra one) and
``relative_drift = absolute_drift / batch_total`` (0 when both are 0; 1 when only the speed layer counted
something).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class ViewTotals:
    """One layer's values of one view in one hour: key -> metric -> value."""

    view: str
    metrics: tuple[str, ...]
    values: Mapping[str, Mapping[str, float]]


def hours_to_reconcile(*, now: datetime, bucket_ttl_seconds: int, settle_seconds: int) -> list[datetime]:
    """The closed event hours whose speed buckets all still exist, oldest first.

    An hour qualifies when it ended at least ``settle_seconds`` ago (the speed layer's allowed lateness and
    session timeout, after which its buckets no longer change) and started less than ``bucket_ttl_seconds`` ago
    (its first buckets were written no earlier than its start, so none has expired yet).
    """
    if now.tzinfo is None:
        raise ValueError(f"{now!r} has no time zone; pass an aware UTC time")
    now = now.astimezone(timezone.utc)
    oldest = now - timedelta(seconds=bucket_ttl_seconds)
    hour = now.replace(minute=0, second=0, microsecond=0)
    hours: list[datetime] = []
    while hour > oldest:
        if hour + _HOUR + timedelta(seconds=settle_seconds) <= now:
            hours.append(hour)
        hour -= _HOUR
    return sorted(hours)


def drift_rows(hour: datetime, batch: ViewTotals, speed: ViewTotals, *, checked_at: datetime) -> list[dict[str, Any]]:
    """One row per metric of the view (the columns of ``warehouse_models.tables.RECONCILIATION``)."""
    if (batch.view, batch.metrics) != (speed.view, speed.metrics):
        raise ValueError(f"cannot compare {batch.view} {batch.metrics} with {speed.view} {speed.metrics}")
    keys = set(batch.values) | set(speed.values)
    rows = []
    for metric in batch.metrics:
        batch_total = speed_total = absolute = 0.0
        for key in keys:
            b = float(batch.values.get(key, {}).get(metric, 0))
            s = float(speed.values.get(key, {}).get(metric, 0))
            batch_total += b
            speed_total += s
            absolute += abs(s - b)
        relative = absolute / batch_total if batch_total else (0.0 if absolute == 0 else 1.0)
        rows.append({"hour": hour, "view": batch.view, "metric": metric, "key_count": len(keys),
                     "batch_total": batch_total, "speed_total": speed_total, "absolute_drift": absolute,
                     "relative_drift": relative, "checked_at": checked_at})
    return rows


def over_threshold(rows: Iterable[Mapping[str, Any]], max_relative_drift: float) -> list[Mapping[str, Any]]:
    """The drift rows above the limit, by hour then view and metric."""
    return sorted((r for r in rows if float(r["relative_drift"]) > max_relative_drift),
                  key=lambda r: (r["hour"], r["view"], r["metric"]))


def describe(rows: Sequence[Mapping[str, Any]]) -> str:
    """``view.metric at hour: speed S vs batch B (drift D %)`` per row, one line each."""
    return "\n".join(
        f"{r['view']}.{r['metric']} at {r['hour'].astimezone(timezone.utc):%Y-%m-%d %H:00} UTC: speed "
        f"{r['speed_total']:g} vs batch {r['batch_total']:g} (drift {float(r['relative_drift']) * 100:.2f} %)"
        for r in rows)

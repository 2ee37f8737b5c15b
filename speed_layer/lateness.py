"""The event-time cut-off of the additive views, kept per query in Redis so a replayed micro-batch sees the same.

The additive views (engagement, CTR, trending, spikes) aggregate each micro-batch on its own and add the result
to Redis, so Spark's watermark (which belongs to a streaming aggregation's state) does not apply to them. The
query keeps its own: ``watermark = max event time seen in earlier micro-batches - allowed lateness``. Events
older than the watermark are left to the batch layer and counted; newer ones count, however late they arrive.

Determinism: the watermark a micro-batch uses is a function of the batches before it only. The record written
at the start of batch ``n`` keeps both the watermark it used (``used_ms``) and the one it leaves for batch
``n + 1`` (``next_ms``); a replay of ``n`` (after a crash) finds its own record and uses ``used_ms`` again, and
adds its late events to the total only once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Cutoff:
    """The cut-off record of one query after micro-batch ``batch_id``."""

    batch_id: int
    used_ms: int | None
    """Watermark this batch applied (epoch ms); None: no earlier batch, nothing is late yet."""

    next_ms: int | None
    """Watermark the next batch applies."""

    late_total: int = 0
    """Events left to the batch layer by every batch up to this one."""

    def fields(self) -> dict[str, str]:
        """The record as Redis hash fields (missing watermarks as empty strings)."""
        return {"batch_id": str(self.batch_id), "used_ms": _text(self.used_ms), "next_ms": _text(self.next_ms),
                "late_total": str(self.late_total)}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Cutoff | None:
        """The record from its hash fields; None for an empty hash (a new query)."""
        if not fields:
            return None
        return cls(batch_id=int(fields["batch_id"]), used_ms=_number(fields.get("used_ms", "")),
                   next_ms=_number(fields.get("next_ms", "")), late_total=int(fields.get("late_total", "0")))


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def _number(value: str) -> int | None:
    return int(value) if value else None


def watermark_for(stored: Cutoff | None, batch_id: int) -> int | None:
    """The watermark micro-batch ``batch_id`` applies, given the record the last started batch left."""
    if stored is None:
        return None
    if stored.batch_id == batch_id:  # a replay: the same cut-off as the first attempt
        return stored.used_ms
    if stored.batch_id > batch_id:
        raise ValueError(f"micro-batch {batch_id} runs after batch {stored.batch_id} started: the checkpoint and "
                         "the Redis cut-off record disagree (was the checkpoint deleted? then delete the record too)")
    return stored.next_ms


def advance(stored: Cutoff | None, batch_id: int, *, max_event_ms: int | None, late: int,
            lateness_ms: int) -> Cutoff:
    """The record micro-batch ``batch_id`` leaves: its watermark, the next one, and the late total.

    A replay (the stored record is this batch's own) returns the stored record: the same rows give the same
    figures, and the late events are not counted twice.

    Args:
        max_event_ms: the newest event time in the batch (None for a batch without events).
        late: events of this batch older than its watermark.
        lateness_ms: the allowed lateness.
    """
    if stored is not None and stored.batch_id == batch_id:
        return stored
    used = watermark_for(stored, batch_id)
    candidates = [w for w in (used, None if max_event_ms is None else max_event_ms - lateness_ms) if w is not None]
    return Cutoff(batch_id=batch_id, used_ms=used, next_ms=max(candidates) if candidates else None,
                  late_total=(stored.late_total if stored is not None else 0) + late)

"""The event-time cut-off of the additive views, kept per query in Redis so a replayed micro-batch sees the same.

The additive views (engagement, CTR, trending, spikes) aggregate each micro-batch on its own and add the result
to Redis, so Spark's watermark (which belongs to a streaming aggregation's state) does not apply to them. The
shared query keeps its own, per topic: ``watermark = max event time seen on the topic in earlier micro-batches
- allowed lateness``. Per topic, because the topics are separate event streams: catalog upserts carry the time
of a catalog change, not of viewing, and must not make the viewing events look late. Events older than their
topic's watermark are left to the batch layer and counted; newer ones count, however late they arrive.

Determinism: the watermark a micro-batch uses is a function of the batches before it only. The record written
at the start of batch ``n`` keeps both the watermarks it used (``used``) and the ones it leaves for batch
``n + 1`` (``next``); a replay of ``n`` (after a crash) finds its own record and uses ``used`` again, and adds
its late events to the total only once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Cutoff:
    """The cut-off record of one query after micro-batch ``batch_id``."""

    batch_id: int
    used: Mapping[str, int] = field(default_factory=dict)
    """Watermark (epoch ms) per topic this batch applied; a topic without one had no earlier events."""

    next: Mapping[str, int] = field(default_factory=dict)
    """Watermark per topic the next batch applies."""

    late_total: int = 0
    """Events left to the batch layer by every batch up to this one."""

    checkpoint_id: str = ""
    """The streaming query (its checkpoint) whose batches these are; a record of another checkpoint is ignored."""

    def fields(self) -> dict[str, str]:
        """The record as Redis hash fields."""
        return {"batch_id": str(self.batch_id), "used": json.dumps(dict(sorted(self.used.items()))),
                "next": json.dumps(dict(sorted(self.next.items()))), "late_total": str(self.late_total),
                "checkpoint_id": self.checkpoint_id}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Cutoff | None:
        """The record from its hash fields; None for an empty hash (a new query)."""
        if not fields:
            return None
        return cls(batch_id=int(fields["batch_id"]), used=json.loads(fields.get("used") or "{}"),
                   next=json.loads(fields.get("next") or "{}"), late_total=int(fields.get("late_total", "0")),
                   checkpoint_id=fields.get("checkpoint_id", ""))


def of_checkpoint(stored: Cutoff | None, checkpoint_id: str) -> Cutoff | None:
    """The stored record if the same checkpoint wrote it (or one written before records named their checkpoint);
    None for another checkpoint's (a query started anew on a new checkpoint against the Redis of an old one starts
    its cut-off anew)."""
    return stored if stored is not None and stored.checkpoint_id in (checkpoint_id, "") else None


def watermarks_for(stored: Cutoff | None, batch_id: int) -> dict[str, int]:
    """The watermarks (per topic) micro-batch ``batch_id`` applies, given the record the last started batch left
    (of the same checkpoint: :func:`of_checkpoint`)."""
    if stored is None:
        return {}
    if stored.batch_id == batch_id:  # a replay: the same cut-off as the first attempt
        return dict(stored.used)
    if stored.batch_id > batch_id:
        raise ValueError(f"micro-batch {batch_id} runs after batch {stored.batch_id} started: the checkpoint and "
                         "the Redis cut-off record disagree (was the checkpoint deleted? then delete the record too)")
    return dict(stored.next)


def advance(stored: Cutoff | None, batch_id: int, *, newest: Mapping[str, int], late: int,
            lateness_ms: int, checkpoint_id: str = "") -> Cutoff:
    """The record micro-batch ``batch_id`` leaves: its watermarks, the next ones, and the late total.

    A replay (the stored record is this batch's own) returns the stored record: the same rows give the same
    figures, and the late events are not counted twice.

    Args:
        newest: the newest event time (epoch ms) per topic in the batch (topics without events left out).
        late: events of this batch older than their topic's watermark.
        lateness_ms: the allowed lateness.
    """
    if stored is not None and stored.batch_id == batch_id:
        return stored
    used = watermarks_for(stored, batch_id)
    following = dict(used)
    for topic, ms in newest.items():
        following[topic] = max(following.get(topic, ms - lateness_ms), ms - lateness_ms)
    return Cutoff(batch_id=batch_id, used=used, next=following,
                  late_total=(stored.late_total if stored is not None else 0) + late, checkpoint_id=checkpoint_id)


VALID = "_valid"
"""Column of the shared projection: the record passed the envelope check."""

EVENT_MS = "_event_ms"
"""Column of the shared projection: a valid event's time (epoch ms); null on a refused record."""

TOPIC = "kafka_topic"


def late_mask(table: pa.Table, used: Mapping[str, int]) -> pa.ChunkedArray | pa.Array:
    """True for each valid event older than its topic's watermark among ``used``; False elsewhere."""
    import pyarrow as pa
    import pyarrow.compute as pc

    late: pa.ChunkedArray | pa.Array = pa.array([False] * table.num_rows, pa.bool_())
    for topic, watermark in sorted(used.items()):
        older = pc.and_(pc.equal(table[TOPIC], topic), pc.less(table[EVENT_MS], watermark))
        late = pc.or_(late, pc.fill_null(older, False))
    return late


def lateness_rows(table: pa.Table, late: pa.ChunkedArray | pa.Array) -> list[dict[str, Any]]:
    """Per topic of the batch's valid events: ``newest`` (epoch ms) and how many are ``late``."""
    import pyarrow.compute as pc

    events = table.select([TOPIC, EVENT_MS]).append_column("late", pc.cast(late, "int64")).filter(table[VALID])
    grouped = events.group_by(TOPIC, use_threads=False).aggregate([(EVENT_MS, "max"), ("late", "sum")])
    return [{"kafka_topic": row[TOPIC], "newest": row[f"{EVENT_MS}_max"], "late": row["late_sum"]}
            for row in grouped.to_pylist()]

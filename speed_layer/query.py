"""What a speed-layer view is: a pure transformation of valid events plus a writer of its micro-batches.

Every view module (``speed_layer/<view>.py``) exports one :class:`ViewQuery` named ``QUERY``. The job
(:mod:`speed_layer.job`) reads the view's topics from Kafka, parses and validates them once with the shared
envelope (:mod:`speed_layer.source`), applies ``transform`` and hands each micro-batch to ``write`` from
``foreachBatch``. ``transform`` never touches I/O, so the same function runs on a streaming DataFrame here, on
a batch DataFrame in the unit tests, and in the batch layer.

Exactly-once effect: Spark re-runs a micro-batch with the same id and the same rows after a crash, so every
``write`` is idempotent: it sets whole window values (update output mode), adds to sets, or moves a value only
forward in event time (``ZADD GT``, compare-and-set scripts). A writer that must increment fences on the batch
id with :func:`fenced`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from warehouse_models.events import TopicKind
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from _typeshed import SupportsRichComparisonT
    from pyspark.sql import DataFrame


@dataclass
class SinkContext:
    """What a writer gets with each micro-batch: where to write and which batch this is."""

    settings: Settings
    client: redis.Redis
    keys: KeyLayout
    query_name: str
    batch_id: int
    stats: dict[str, Any] = field(default_factory=dict)
    """Counts the writer wants logged with the batch (e.g. ``{"alerts_raised": 1}``)."""


Transform = Callable[["DataFrame", Settings], "DataFrame"]
Writer = Callable[["DataFrame", SinkContext], None]


@dataclass(frozen=True)
class ViewQuery:
    """One real-time view: which topics it reads, how it computes, how a micro-batch reaches its sink."""

    name: str
    """Query name (Spark UI, checkpoint folder, progress key)."""

    description: str
    topics: tuple[TopicKind, ...]
    transform: Transform
    write: Writer
    output_mode: Literal["update", "append"] = "update"
    reads: Literal["events", "records"] = "events"
    """``events``: the valid events (:func:`speed_layer.source.valid_events`); ``records``: the raw Kafka records
    (:func:`batch_layer.bronze.transform.kafka_records`), for the dead-letter view."""

    background: bool = False
    """Runs Python per session or per record: triggered every ``speed_background_trigger_seconds`` instead of
    every ``speed_trigger_seconds``."""

    realtime_capable: bool = False
    """Stateless (no aggregation or state): may run with Spark's real-time trigger."""


def fenced(ctx: SinkContext, pipe: Any) -> bool:
    """Add the batch-id fence to a transaction: returns False (write nothing) if this batch was committed.

    For writers that increment: the caller queues its commands on a ``MULTI`` pipeline after this returns
    True; :func:`commit_fence` then records the batch id in the same transaction.
    """
    last = ctx.client.get(ctx.keys.speed_commit(ctx.query_name))
    return last is None or int(last) < ctx.batch_id


def commit_fence(ctx: SinkContext, pipe: Any) -> None:
    """Record this batch as committed (inside the writer's transaction)."""
    pipe.set(ctx.keys.speed_commit(ctx.query_name), ctx.batch_id)


def newest_per_title(rows: Iterable[Mapping[str, Any]],
                     value: Callable[[Mapping[str, Any]], SupportsRichComparisonT],
                     ) -> dict[str, dict[str, SupportsRichComparisonT]]:
    """Rows -> user -> content -> the largest ``value`` of the (user_id, content_id) rows, whatever their order."""
    out: dict[str, dict[str, SupportsRichComparisonT]] = {}
    for row in rows:
        titles = out.setdefault(row["user_id"], {})
        candidate = value(row)
        titles[row["content_id"]] = max(titles.get(row["content_id"], candidate), candidate)
    return out

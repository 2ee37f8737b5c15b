"""What a speed-layer view is: a pure transformation of valid events plus a writer of its micro-batches.

Every view module (``speed_layer/<view>.py``) exports one :class:`ViewQuery` named ``QUERY``. A view of the shared
query is defined by what each event contributes to it (:mod:`warehouse_models.metrics.contributions`), which the
job (:mod:`speed_layer.job`) projects in its one stream and reduces per micro-batch, and written by its ``apply``;
a stateful view by its streaming ``transform`` and its ``write``. The definitions never touch I/O, so the same
ones run on a micro-batch here, on a batch DataFrame in the tests and in the batch layer.

Exactly-once effect: Spark re-runs a micro-batch with the same id and the same rows after a crash, so every
``write`` is idempotent: it adds to sets, moves a value only forward in event time (``ZADD GT``,
compare-and-set scripts), or adds the batch's counts to Redis in one script with the batch id
(:func:`write_increments`), which a replayed batch finds and skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal

from warehouse_models.events import TopicKind
from warehouse_models.metrics.contributions import Contributions, reduce_frame
from warehouse_models.redis_io import ClientScript, text
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from _typeshed import SupportsRichComparisonT
    from pyspark.sql import DataFrame


SHARED_QUERY = "views"
"""The query that runs every view without session state (see :mod:`speed_layer.job`)."""


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
    checkpoint_id: str = ""
    """The streaming query's id, kept in its checkpoint (Spark's ``sql.streaming.queryId``): the batch ids a fence
    or cut-off record holds count only for the checkpoint that wrote them, so a query started on a new checkpoint
    (batch ids from 0 again) against the Redis of an old one writes, instead of taking its batches for replays."""


Transform = Callable[["DataFrame", Settings], "DataFrame"]
Writer = Callable[["DataFrame", SinkContext], None]
Apply = Callable[[list[dict[str, Any]], SinkContext], None]


@dataclass(frozen=True)
class ViewQuery:
    """One real-time view: which topics it reads, how it computes, how a micro-batch reaches its sink."""

    name: str
    """Query name (Spark UI, checkpoint folder, progress key)."""

    description: str
    topics: tuple[TopicKind, ...]
    transform: Transform
    write: Writer
    """Writes one batch frame: a stateful view's the rows of its ``transform``; a view of the shared query its
    events (or records), which it reduces itself."""

    output_mode: Literal["update", "append"] = "update"
    reads: Literal["events", "records"] = "events"
    """``events``: the valid events (:func:`speed_layer.source.valid_events`); ``records``: the Kafka records
    (:func:`warehouse_models.kafka_records.kafka_records`) with the check's ``violation``, for the dead-letter view."""

    stateful: bool = False
    """Keeps Spark state across micro-batches (sessions): runs as a streaming query of its own; the other views
    share one query and see each micro-batch as a batch DataFrame."""

    late_cut: bool = False
    """Counts by event-time window: sees only the events inside the allowed lateness (:mod:`speed_layer.lateness`);
    the older ones are left to the batch layer and counted."""

    contributions: Contributions | None = None
    """For a view of the shared query: what each event (or refused record) gives it and how those rows reduce
    (:mod:`warehouse_models.metrics.contributions`). The shared query projects every view's contributions in the
    stream, collects each micro-batch once and reduces each view's rows with Arrow on the driver; ``transform``
    is the same reduction by Spark, for a batch frame."""

    apply: Apply | None = None
    """For a view of the shared query: writes its reduced rows (dicts) to Redis. ``write`` is the same for one
    view's batch frame (its rows reduced by Spark and collected)."""

    repeatable: bool = True
    """Its writes, run again for a replayed micro-batch, change nothing (a fence, ordered or compare-and-set
    writes). False for a view that sends at least once (the dead letters to Kafka): the shared query's writer runs
    it only after every other view of the batch landed, so a failing view does not make it send twice."""


def shared_view(*, name: str, description: str, topics: tuple[TopicKind, ...], contributions: Contributions,
                apply: Apply, late_cut: bool = False, reads: Literal["events", "records"] = "events",
                repeatable: bool = True) -> ViewQuery:
    """A view of the shared query: its ``transform`` and ``write`` for a batch frame follow from its contributions
    and its ``apply``."""

    def transform(frame: DataFrame, settings: Settings) -> DataFrame:
        return reduce_frame(frame, contributions)

    return ViewQuery(name=name, description=description, topics=topics, transform=transform,
                     write=batch_writer(apply, contributions), output_mode="append", reads=reads,
                     late_cut=late_cut, contributions=contributions, apply=apply, repeatable=repeatable)


def fenced(ctx: SinkContext) -> bool:
    """The batch-id fence: False (write nothing) if this batch was committed already.

    For writers that increment: the caller queues its commands on a ``MULTI`` pipeline after this returns
    True; :func:`commit_fence` then records the batch id in the same transaction. A query's micro-batches run
    one after another, so nothing can commit between this check and that transaction.
    """
    last = ctx.client.get(ctx.keys.speed_commit(ctx.query_name))
    if last is None:
        return True
    checkpoint, colon, batch = text(last).rpartition(":")
    if not colon:  # a bare batch id, written before fences named their checkpoint: this one's
        checkpoint = ctx.checkpoint_id
    return checkpoint != ctx.checkpoint_id or int(batch) < ctx.batch_id


def fence_value(ctx: SinkContext) -> str:
    """What the fence records: ``<checkpoint id>:<batch id>``."""
    return f"{ctx.checkpoint_id}:{ctx.batch_id}"


def commit_fence(ctx: SinkContext, pipe: Any) -> None:
    """Record this batch as committed (inside the writer's transaction)."""
    pipe.set(ctx.keys.speed_commit(ctx.query_name), fence_value(ctx))


# KEYS[1]: the query's commit key, then the hashes. ARGV: batch id, ttl, checkpoint id, then per hash: n, then
# n x (field, amount). The fence and the increments in one script: atomic, so a replayed batch (its id committed by
# the same checkpoint) adds nothing.
_FENCED_INCREMENTS_LUA = """
local last = redis.call('GET', KEYS[1])
if last then
  local checkpoint, batch = string.match(last, '^(.*):(%d+)$')
  if not checkpoint then  -- a bare batch id, written before fences named their checkpoint: this one's
    checkpoint, batch = ARGV[3], last
  end
  if checkpoint == ARGV[3] and tonumber(batch) >= tonumber(ARGV[1]) then
    return 0
  end
end
local i = 4
for k = 2, #KEYS do
  local n = tonumber(ARGV[i])
  for j = i + 1, i + 2 * n, 2 do
    redis.call('HINCRBY', KEYS[k], ARGV[j], ARGV[j + 1])
  end
  redis.call('EXPIRE', KEYS[k], ARGV[2])
  i = i + 1 + 2 * n
end
redis.call('SET', KEYS[1], ARGV[3] .. ':' .. ARGV[1])
return 1
"""

_fenced_increments_script = ClientScript(_FENCED_INCREMENTS_LUA)


def write_increments(ctx: SinkContext, increments: Mapping[str, Mapping[str, int]], *, ttl_seconds: int) -> bool:
    """Add a micro-batch's counts to Redis hashes (``key -> field -> amount``) exactly once.

    One script call: it checks that the batch id was not committed yet, adds the increments, sets the TTLs and
    records the batch id, atomically (a script runs alone), so a replayed batch changes nothing. One round trip
    and one command however many hashes, instead of a command per field. Returns False for such a replay.
    """
    keys: list[str] = [ctx.keys.speed_commit(ctx.query_name)]
    args: list[Any] = [ctx.batch_id, ttl_seconds, ctx.checkpoint_id]
    for key, fields in increments.items():
        pairs = [pair for pair in fields.items() if pair[1]]
        keys.append(key)
        args.append(len(pairs))
        args.extend(chain.from_iterable(pairs))
    return bool(_fenced_increments_script(ctx.client)(keys=keys, args=args))


_PRODUCERS: dict[str, Any] = {}


def produce_all(settings: Settings, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    """Send a micro-batch's records (key, value) to a Kafka topic from the driver and wait until the broker has
    them all: one producer per process and cluster (kafka-python, made on first use), no Spark job. Raises if the
    broker refused one, so the micro-batch fails and runs again (at least once; the records carry their own ids)."""
    from kafka import KafkaProducer

    producer = _PRODUCERS.get(settings.kafka_bootstrap_servers)
    if producer is None:
        producer = _PRODUCERS[settings.kafka_bootstrap_servers] = KafkaProducer(
            **settings.kafka_producer_config(client_id="reelytics-speed"))
    sends = [producer.send(topic, key=key, value=value) for key, value in records]
    producer.flush()
    for send in sends:
        send.get(timeout=30)


def collect_rows(frame: DataFrame) -> list[dict[str, Any]]:
    """A micro-batch's (small, already reduced) rows on the driver as dicts, through Arrow: ``collect()`` builds a
    Python ``Row`` per record, several times dearer at tens of thousands of rows per batch. Only for plain
    columns (strings, numbers, booleans): timestamps are collected as epoch numbers by the writers."""
    return frame.toArrow().to_pylist()


def batch_writer(apply: Apply, contributions: Contributions) -> Writer:
    """A view's ``write`` for one batch frame: its contributions reduced by Spark, collected, then ``apply``."""

    def write(batch: DataFrame, ctx: SinkContext) -> None:
        apply(collect_rows(reduce_frame(batch, contributions)), ctx)

    return write


def newest_per_title(rows: Iterable[Mapping[str, Any]],
                     value: Callable[[Mapping[str, Any]], SupportsRichComparisonT], *, member: str = "content_id",
                     ) -> dict[str, dict[str, SupportsRichComparisonT]]:
    """Rows -> user -> ``member`` (the title by default) -> the largest ``value`` of the (user_id, member) rows,
    whatever their order."""
    out: dict[str, dict[str, SupportsRichComparisonT]] = {}
    for row in rows:
        titles = out.setdefault(row["user_id"], {})
        candidate = value(row)
        titles[row[member]] = max(titles.get(row[member], candidate), candidate)
    return out

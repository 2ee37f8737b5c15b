"""Where simulated events go: Kafka (as any producer would send them) or an NDJSON file.

Both sinks keep the stream's order (catalog upserts first), can pace it to a rate in events per second, and
return how many events went to each topic. The Kafka sink uses the project's producer settings, keys every
record with :func:`kafka_key` and flushes before returning; it fails with a clear :class:`SinkError` when
the broker cannot be reached or a send fails.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from warehouse_models.events import TopicKind, encode, kafka_key, topic_kind

if TYPE_CHECKING:
    from warehouse_models.settings import Settings
    from warehouse_models.topics import Topics

logger = logging.getLogger(__name__)

_FLUSH_TIMEOUT_S = 120.0
T = TypeVar("T")


class SinkError(RuntimeError):
    """A sink could not deliver the events (the message says what to do)."""


def paced(events: Iterable[T], rate: float) -> Iterator[T]:
    """Yield events no faster than ``rate`` per second (``0`` or less: as fast as possible)."""
    if rate <= 0:
        yield from events
        return
    began = time.monotonic()
    for i, event in enumerate(events):
        ahead = began + i / rate - time.monotonic()
        if ahead > 0.005:
            time.sleep(ahead)
        yield event


def write_file(events: Iterable[Mapping[str, Any]], path: Path, *, topics: Topics, rate: float = 0.0) -> dict[str, int]:
    """Write events as NDJSON (one wire-form event per line, UTF-8); returns counts per topic name.

    The file holds exactly what the Kafka sink would send as record values, in the same order.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    names = {kind: topics.for_kind(kind).name for kind in TopicKind}
    with path.open("wb") as out:
        for event in paced(events, rate):
            out.write(encode(event))
            out.write(b"\n")
            counts[names[topic_kind(event)]] += 1
    logger.info("wrote %d events to %s", sum(counts.values()), path)
    return dict(counts)


def _unreachable(settings: Settings, exc: BaseException) -> SinkError:
    return SinkError(
        f"Kafka at {settings.kafka_bootstrap_servers} is unreachable or did not answer in time "
        f"({exc.__class__.__name__}: {exc}). "
        "Start the local services with `reelytics up` (or point REELYTICS_KAFKA_BOOTSTRAP_SERVERS at a broker) "
        "and try again."
    )


def write_kafka(events: Iterable[Mapping[str, Any]], settings: Settings, *, rate: float = 0.0) -> dict[str, int]:
    """Produce events to their topics (``settings.topics``), keyed by account or entity; returns counts per topic.

    Catalog upserts come first in the simulator's stream; they are flushed before any viewer event is sent, so
    consumers that join the catalog see every title and profile before the first play.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from infra.kafka import healthy as kafka_healthy

    if not kafka_healthy(settings):
        raise _unreachable(settings, ConnectionRefusedError("no broker answers"))
    try:
        producer = KafkaProducer(**settings.kafka_producer_config())
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc
    names = {kind: settings.topics.for_kind(kind).name for kind in TopicKind}
    counts: Counter[str] = Counter()
    failures: list[BaseException] = []
    catalog_flushed = False
    try:
        for event in paced(events, rate):
            kind = topic_kind(event)
            if kind is not TopicKind.CATALOG and not catalog_flushed:
                producer.flush(timeout=_FLUSH_TIMEOUT_S)
                catalog_flushed = True
            if failures:
                break
            future = producer.send(names[kind], value=encode(event), key=kafka_key(event))
            future.add_errback(failures.append)
            counts[names[kind]] += 1
        producer.flush(timeout=_FLUSH_TIMEOUT_S)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc
    finally:
        producer.close(timeout=10)
    if failures:
        raise SinkError(
            f"{len(failures)} or more sends to Kafka failed, first: {failures[0]!r}. Check that the topics "
            f"{', '.join(sorted(counts))} exist (`reelytics up` creates them) and the broker is healthy."
        )
    logger.info("produced %d events to %s", sum(counts.values()), settings.kafka_bootstrap_servers)
    return dict(counts)

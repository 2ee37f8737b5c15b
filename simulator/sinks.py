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


_COLLECTOR_TIMEOUT_S = 60.0
_COLLECTOR_RETRY_BUDGET_S = 300.0
"""How long a batch may keep getting 503s (Kafka down) before the collector sink gives up."""


def write_collector(
    events: Iterable[Mapping[str, Any]],
    settings: Settings,
    *,
    batch_size: int = 500,
    rate: float = 0.0,
    url: str | None = None,
) -> dict[str, int]:
    """POST events to the collector as gzip NDJSON batches; returns ``{"accepted": n, "rejected": m}``.

    A 503 (Kafka did not acknowledge some events) is retried after its ``Retry-After``, resending only the
    events the answer marked ``retry``, so an accepted event is never sent twice. Catalog upserts are sent in
    batches of their own ahead of the viewer events, as with :func:`write_kafka`.

    Args:
        events: the stream to send (wire form or simulator events).
        settings: where the collector listens (``collector_host``/``collector_port``).
        batch_size: events per request (at most ``settings.collector_max_batch_events``).
        rate: events per second of wall clock (0: as fast as the collector answers).
        url: the collector's base URL, when not the one of the settings.
    """
    import gzip

    import httpx

    from serving.collector.service import collector_url

    if not 1 <= batch_size <= settings.collector_max_batch_events:
        raise ValueError(f"batch_size must be 1..{settings.collector_max_batch_events}, got {batch_size}")
    endpoint = (url.rstrip("/") if url else collector_url(settings)) + "/v1/events"
    headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
    counts: Counter[str] = Counter({"accepted": 0, "rejected": 0})

    def post(client: httpx.Client, lines: list[bytes]) -> None:
        deadline = time.monotonic() + _COLLECTOR_RETRY_BUDGET_S
        while lines:
            body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1)
            try:
                response = client.post(endpoint, content=body, headers=headers)
            except httpx.TransportError as exc:
                raise SinkError(f"the collector at {endpoint} did not answer ({exc.__class__.__name__}: {exc}). "
                                "Start it with `reelytics collector` and try again.") from exc
            if response.status_code not in (200, 503):
                raise SinkError(f"the collector refused a batch of {len(lines)} events: {response.status_code} "
                                f"{response.text[:300]}")
            answer = response.json()
            counts["accepted"] += answer["accepted"]
            counts["rejected"] += answer["rejected"]
            if response.status_code == 200:
                return
            retry = [r["index"] for r in answer["results"] if r["status"] == "retry"]
            if time.monotonic() > deadline:
                raise SinkError(f"Kafka behind the collector did not acknowledge {len(retry)} events for "
                                f"{_COLLECTOR_RETRY_BUDGET_S:.0f} s; check `reelytics status`")
            wait = float(response.headers.get("retry-after", "1") or 1)
            logger.warning("collector: %d events not acknowledged by Kafka; resending in %.0f s", len(retry), wait)
            time.sleep(wait)
            lines = [lines[i] for i in retry]

    with httpx.Client(timeout=_COLLECTOR_TIMEOUT_S) as client:
        batch: list[bytes] = []
        batch_is_catalog = True
        for event in paced(events, rate):
            is_catalog = topic_kind(event) is TopicKind.CATALOG
            if batch and (len(batch) >= batch_size or is_catalog != batch_is_catalog):
                post(client, batch)
                batch = []
            batch_is_catalog = is_catalog
            batch.append(encode(event))
        if batch:
            post(client, batch)
    logger.info("sent %d events to %s: %d accepted, %d rejected", counts["accepted"] + counts["rejected"], endpoint,
                counts["accepted"], counts["rejected"])
    return dict(counts)

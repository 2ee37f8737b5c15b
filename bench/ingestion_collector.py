"""How fast the collector takes events in, against librdkafka writing the same events straight to Kafka.

:func:`measure_collector` starts the collector as a background process (uvicorn, two workers by default) on
a free port with throw-away topics, and drives it with a load client: a few threads, each with its own keep-alive httpx
connection, posting pre-built NDJSON bodies (gzip from 100 events up, as players batch them). For each batch
size it reports events per second (first request sent to last answer received) and the accept latency, i.e.
the time from sending a request to its answer, which the collector gives only after Kafka acknowledged every
event in it. ``raw_producer_eps`` is the same events produced by a confluent-kafka producer with the
collector's own configuration, from the first ``produce`` to ``flush`` returning: the ceiling the collector is
read against. Every run checks that the playback topic grew by exactly the events sent.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import resource
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.baselines import EncodedEvents, encoded_events, end_offset_total
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZES = (1, 100, 1000)
DEFAULT_EVENTS = 50_000
"""Events sent per batch size (batch size 1 sends ``DEFAULT_SINGLE_EVENTS``: one request each)."""

DEFAULT_SINGLE_EVENTS = 3_000
DEFAULT_CONCURRENCY = 8
"""Requests in flight at once: enough to keep the collector's workers busy while they wait for Kafka."""

DEFAULT_WORKERS = 2
"""Collector worker processes: one per core of the machine the figures are quoted for."""

GZIP_FROM_BATCH = 100
WARMUP_REQUESTS = 5


@dataclass(frozen=True)
class LoadRun:
    """One batch size's run: how many events, how long, and each request's latency."""

    batch_size: int
    events: int
    seconds: float
    latencies_ms: list[float]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def percentile_ms(self, pct: float) -> float:
        ordered = sorted(self.latencies_ms)
        rank = max(1, min(len(ordered), math.ceil(pct / 100.0 * len(ordered))))
        return ordered[rank - 1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_bodies(values: Sequence[bytes], batch_size: int) -> list[tuple[bytes, int, dict[str, str]]]:
    """NDJSON bodies of ``batch_size`` events (gzip from :data:`GZIP_FROM_BATCH` up): (body, events, headers)."""
    bodies: list[tuple[bytes, int, dict[str, str]]] = []
    for start in range(0, len(values), batch_size):
        chunk = values[start:start + batch_size]
        body = b"\n".join(chunk) + b"\n"
        headers = {"content-type": "application/x-ndjson"}
        if batch_size >= GZIP_FROM_BATCH:
            body = gzip.compress(body, compresslevel=1)
            headers["content-encoding"] = "gzip"
        bodies.append((body, len(chunk), headers))
    return bodies


def post_bodies(url: str, bodies: Sequence[tuple[bytes, int, dict[str, str]]], *, concurrency: int,
                batch_size: int) -> LoadRun:
    """Post every body from ``concurrency`` threads (one keep-alive connection each); every event must be accepted."""
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))

    def worker() -> None:
        with httpx.Client(timeout=60) as client:
            while not failures:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                body, count, headers = bodies[index]
                began = time.perf_counter()
                response = client.post(url, content=body, headers=headers)
                elapsed = (time.perf_counter() - began) * 1000.0
                if response.status_code != 200 or response.json()["accepted"] != count:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    return
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker, name=f"load-{i}") for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"the collector did not accept a batch of {batch_size}: {failures[0]}")
    return LoadRun(batch_size, sum(count for _, count, _ in bodies), seconds, latencies)


def raw_produce(settings: Settings, topic: str, events: EncodedEvents) -> float:
    """Events per second of a confluent-kafka producer with the collector's configuration (produce to flush)."""
    from confluent_kafka import Producer

    from serving.collector.producer import producer_config

    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({**producer_config(settings), "client.id": "reelytics-bench-raw"})
    key, value = events.pairs[0]
    producer.produce(topic, value, key)  # connect and get the idempotent producer id before the clock starts
    if producer.flush(30):
        raise RuntimeError("the raw producer's warm-up record was not delivered")
    produce, poll = producer.produce, producer.poll
    started = time.perf_counter()
    for key, value in events.pairs:
        while True:
            try:
                produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.05)
        poll(0)
    left = producer.flush(60)
    seconds = time.perf_counter() - started
    if left or errors:
        raise RuntimeError(f"raw producer: {left} undelivered, {len(errors)} errors ({errors[:1]})")
    return events.count / seconds


def _delete_topics(settings: Settings) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_admin_config(client_id="reelytics-bench-admin"))
    try:
        admin.delete_topics(settings.topics.names(), timeout_ms=30_000)
    except Exception:  # the figures are measured; a leftover topic only costs disk
        logger.warning("could not delete the benchmark topics %s.*", settings.kafka_topic_prefix, exc_info=True)
    finally:
        admin.close()


def _tree_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process and its live children (0 when it is gone)."""
    import psutil

    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_collector(
    settings: Settings,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    events: int = DEFAULT_EVENTS,
    single_events: int = DEFAULT_SINGLE_EVENTS,
    concurrency: int = DEFAULT_CONCURRENCY,
    workers: int = DEFAULT_WORKERS,
) -> dict[str, float]:
    """Measure the collector's events/s and accept latency per batch size, and the raw producer's events/s.

    Args:
        settings: the Kafka to measure against; the collector gets its own port, topics and run dir.
        batch_sizes: events per request to measure.
        events: events sent per batch size above 1.
        single_events: events sent with batch size 1 (one request each, so far slower).
        concurrency: requests in flight at once.
        workers: collector worker processes (uvicorn workers, each with its own producer).

    Returns:
        ``collector_eps_batch<N>``, ``collector_p50_ms_batch<N>``, ``collector_p99_ms_batch<N>`` for each batch
        size, ``raw_producer_eps`` and ``collector_to_raw_ratio`` (the largest batch's events/s over the raw
        producer's).
    """
    from infra.kafka import ensure_topics
    from infra.kafka import managed_pid as kafka_pid
    from serving.collector.service import collector_url, managed_pid, start_collector, stop_collector

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="reelytics-bench-collector-") as run_root:
        run = settings.model_copy(update={
            "data_dir": Path(run_root),
            "kafka_topic_prefix": f"bench-collector-{uuid.uuid4().hex[:8]}",
            "collector_port": _free_port(),
            "collector_host": "127.0.0.1",
            "collector_max_batch_events": max(settings.collector_max_batch_events, *batch_sizes),
            "log_level": "WARNING",
        })
        ensure_topics(run)
        topic = run.topics.playback.name
        payload = encoded_events(max(events, single_events) + WARMUP_REQUESTS)
        values = [value for _, value in payload.pairs]
        try:
            logger.info("starting the collector: %s", start_collector(run, workers=workers))
            url = collector_url(run, "/v1/events")
            post_bodies(url, request_bodies(values[:WARMUP_REQUESTS], 1), concurrency=1, batch_size=1)
            for size in batch_sizes:
                count = single_events if size == 1 else events
                bodies = request_bodies(values[WARMUP_REQUESTS:WARMUP_REQUESTS + count], size)
                before, _ = end_offset_total(run, topic)
                pids = {"collector": managed_pid(run), "kafka": kafka_pid(settings)}
                cpu_before = {name: _tree_cpu_seconds(pid) for name, pid in pids.items()}
                client_before = _own_cpu_seconds()
                load = post_bodies(url, bodies, concurrency=concurrency, batch_size=size)
                client_cpu = _own_cpu_seconds() - client_before
                cpu = {name: _tree_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                after, _ = end_offset_total(run, topic)
                if after - before != load.events:
                    raise RuntimeError(f"{topic} grew by {after - before:,} for {load.events:,} accepted events")
                figures[f"collector_eps_batch{size}"] = round(load.events_per_second)
                figures[f"collector_p50_ms_batch{size}"] = round(load.percentile_ms(50), 2)
                figures[f"collector_p99_ms_batch{size}"] = round(load.percentile_ms(99), 2)
                # Where the two cores went, in CPU microseconds per event: what limits the rate on one machine.
                per_event = 1e6 / load.events
                figures[f"collector_cpu_us_per_event_batch{size}"] = round(cpu["collector"] * per_event, 1)
                figures[f"kafka_cpu_us_per_event_batch{size}"] = round(cpu["kafka"] * per_event, 1)
                figures[f"load_client_cpu_us_per_event_batch{size}"] = round(client_cpu * per_event, 1)
                logger.info("batch %d: %.0f events/s, p50 %.1f ms, p99 %.1f ms", size, load.events_per_second,
                            load.percentile_ms(50), load.percentile_ms(99))
        finally:
            stop_collector(run)
        try:
            raw = EncodedEvents(payload.pairs[:events], 0, 0)
            figures["raw_producer_eps"] = round(raw_produce(run, topic, raw))
            largest = max(batch_sizes)
            figures["collector_to_raw_ratio"] = round(
                figures[f"collector_eps_batch{largest}"] / figures["raw_producer_eps"], 3)
        finally:
            _delete_topics(run)
    return figures

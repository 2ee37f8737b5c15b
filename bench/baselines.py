"""The `baselines` benchmark: what the raw clients do on this machine before any Reelytics code runs.

Three figures set the ceiling every later number is read against:

* kafka-python producing realistic heartbeat envelopes with the project's producer settings (acks=all,
  idempotent, lz4), from the first ``send`` to ``flush()`` returning;
* the same events through librdkafka (confluent-kafka) with the same guarantees;
* redis-py GET and SET round trips on one connection.

Both producers write to a throw-away topic that is created for the run and deleted afterwards; the growth of
its end offsets must equal the number of events sent, or the benchmark fails. The Redis keys live under a
dedicated prefix, carry a TTL as a safety net, and are deleted at the end.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.harness import BenchContext, Outcome, benchmark
from warehouse_models.events import (
    DEVICE_TYPES,
    NETWORK_QUALITIES,
    QUALITY_LEVELS,
    SCHEMA_VERSION,
    EventType,
    encode,
    format_timestamp,
    kafka_key,
    validate_event,
)
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

FULL_EVENTS = 200_000
QUICK_EVENTS = 20_000
REDIS_KEYS = 10_000
FULL_GETS = 50_000
QUICK_GETS = 5_000
REDIS_VALUE_BYTES = 100
REDIS_KEY_TTL_SECONDS = 600
"""Safety net: the keys expire even if the run dies before deleting them."""
REDIS_WARMUP_GETS = 1_000
BENCH_TOPIC_STEM = "bench-baseline"
WARMUP_RECORDS = 1
"""Records each producer sends (and waits for) before the clock starts: connection and producer id."""
EVENT_SEED = 20_240_601
ACCOUNTS = 25_000
"""Distinct accounts (Kafka keys) among the events: enough that every partition gets a fair share."""

_BITRATE_OF_QUALITY = {"240p": 400, "360p": 800, "480p": 1_400, "720p": 3_000, "1080p": 5_800, "2160p": 16_000}
_COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "CA", "MX", "ES", "IT", "AU")


# --- the events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedEvents:
    """The wire form of the events to send: (key, value) pairs and their sizes."""

    pairs: list[tuple[bytes, bytes]]
    value_bytes: int
    key_bytes: int

    @property
    def count(self) -> int:
        return len(self.pairs)

    @property
    def value_bytes_avg(self) -> float:
        return self.value_bytes / self.count if self.count else 0.0


def heartbeat_events(count: int, *, seed: int = EVENT_SEED, now: datetime | None = None) -> list[dict[str, Any]]:
    """``count`` heartbeat envelopes from many accounts, as a player sends them every ten seconds."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    start = now - timedelta(minutes=30)
    events: list[dict[str, Any]] = []
    for i in range(count):
        account = rng.randrange(ACCOUNTS)
        profile = rng.randrange(4)
        session = rng.randrange(3)
        quality = rng.choice(QUALITY_LEVELS)
        is_live = rng.random() < 0.15
        events.append(
            {
                "event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                "schema_version": SCHEMA_VERSION,
                "event_type": EventType.HEARTBEAT.value,
                "event_timestamp": format_timestamp(start + timedelta(milliseconds=i * 9)),
                "account_id": f"acc-{account:07d}",
                "user_id": f"usr-{account:07d}-{profile}",
                "device_id": f"dev-{account:07d}-{rng.randrange(3)}",
                "device_type": rng.choice(DEVICE_TYPES),
                "country": _COUNTRIES[account % len(_COUNTRIES)],
                "network_quality": rng.choice(NETWORK_QUALITIES),
                "app_version": f"5.{rng.randrange(4)}.{rng.randrange(10)}",
                "session_id": f"ses-{account:07d}-{profile}-{session}",
                "content_id": f"live-{rng.randrange(12):03d}" if is_live else f"vod-{rng.randrange(4_000):05d}",
                "is_live": is_live,
                "position_seconds": round(rng.uniform(0.0, 7_200.0), 3),
                "player_state": rng.choices(("playing", "paused", "buffering"), weights=(92, 5, 3))[0],
                "quality_level": quality,
                "bitrate_kbps": _BITRATE_OF_QUALITY[quality],
            }
        )
    return events


def encoded_events(count: int) -> EncodedEvents:
    """Build, validate and encode ``count`` heartbeats; ValueError if any fails validation."""
    now = datetime.now(timezone.utc)
    pairs: list[tuple[bytes, bytes]] = []
    value_bytes = key_bytes = 0
    for event in heartbeat_events(count, now=now):
        checked = validate_event(event, now=now)
        if not checked.ok:
            raise ValueError(f"benchmark event {event['event_id']} fails validation: {checked.reason}")
        key, value = kafka_key(event), encode(event)
        pairs.append((key, value))
        key_bytes += len(key)
        value_bytes += len(value)
    return EncodedEvents(pairs, value_bytes, key_bytes)


# --- Kafka --------------------------------------------------------------------------------------------


@contextmanager
def bench_topic(settings: Settings, partitions: int) -> Iterator[str]:
    """A fresh topic for this run (unique name), deleted when the block ends."""
    from kafka import KafkaAdminClient

    name = f"{settings.kafka_topic_prefix}.{BENCH_TOPIC_STEM}-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(**settings.kafka_admin_config(client_id="reelytics-bench-admin"))
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": settings.kafka_replication_factor,
                    "configs": {"compression.type": "producer", "retention.ms": str(3600 * 1000)}}},
            wait_for_metadata=True,
        )
        admin.wait_for_topics([name], timeout_ms=30_000)
        logger.info("created topic %s (%d partitions)", name, partitions)
        yield name
    finally:
        try:
            admin.delete_topics([name], timeout_ms=30_000)
            logger.info("deleted topic %s", name)
        except Exception:  # the result is already measured; a leftover topic only costs disk
            logger.warning("could not delete the benchmark topic %s", name, exc_info=True)
        admin.close()


def end_offset_total(settings: Settings, topic: str) -> tuple[int, int]:
    """(sum of the end offsets over the topic's partitions, number of partitions)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_consumer_config(client_id="reelytics-bench-offsets"))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions in the broker's metadata")
        ends = consumer.end_offsets(partitions)
        return sum(ends[tp] for tp in partitions), len(partitions)
    finally:
        consumer.close()


@dataclass(frozen=True)
class ProduceRun:
    """One timed produce run."""

    client: str
    events: int
    seconds: float
    offset_growth: int

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def notes(self, value_bytes: int) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "payload_mb_per_second": round(value_bytes / self.seconds / 1e6, 2),
            "offset_growth": self.offset_growth,
        }


def _verify_growth(client: str, topic: str, before: int, after: int, sent: int) -> int:
    growth = after - before
    if growth != sent:
        raise RuntimeError(
            f"{client}: the end offsets of {topic} grew by {growth:,} but {sent:,} events were sent and "
            "acknowledged; records were lost or duplicated"
        )
    return growth


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """The project's kafka-python producer settings, under the benchmark's client id."""
    return settings.kafka_producer_config(client_id="reelytics-bench-kafka-python")


def produce_kafka_python(ctx: BenchContext, topic: str, events: EncodedEvents) -> ProduceRun:
    """Send every event with kafka-python's KafkaProducer and the project's producer settings."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_python_config(ctx.settings))
    try:
        # Connect, fetch metadata and obtain the idempotent producer id before the clock starts.
        if not producer.partitions_for(topic):
            raise RuntimeError(f"kafka-python sees no partitions for {topic}")
        warmup_key, warmup_value = events.pairs[0]
        for _ in range(WARMUP_RECORDS):
            producer.send(topic, value=warmup_value, key=warmup_key).get(timeout=30)
        before, _ = end_offset_total(ctx.settings, topic)
        ctx.progress("kafka-python: producing %s events to %s", f"{events.count:,}", topic)
        send = producer.send
        futures: list[Any] = []
        append = futures.append
        started = time.perf_counter()
        for key, value in events.pairs:
            append(send(topic, value=value, key=key))
        producer.flush()
        seconds = time.perf_counter() - started
        failed = [f for f in futures if f.failed()]
        if failed:
            raise RuntimeError(f"kafka-python: {len(failed):,} of {events.count:,} sends failed, "
                               f"the first with {failed[0].exception!r}")
        not_done = sum(1 for f in futures if not f.is_done)
        if not_done:
            raise RuntimeError(f"kafka-python: {not_done:,} sends were still pending after flush()")
    finally:
        producer.close()
    after, _ = end_offset_total(ctx.settings, topic)
    growth = _verify_growth("kafka-python", topic, before, after, events.count)
    run = ProduceRun("kafka-python", events.count, seconds, growth)
    ctx.progress("kafka-python: %s events/s (%.2f s)", f"{run.events_per_second:,.0f}", seconds)
    return run


def confluent_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings with the same delivery guarantees as :meth:`Settings.kafka_producer_config`."""
    return {
        "bootstrap.servers": ",".join(settings.kafka_bootstrap_list),
        "client.id": "reelytics-bench-confluent",
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
    }


def produce_confluent(ctx: BenchContext, topic: str, events: EncodedEvents) -> ProduceRun:
    """Send every event with confluent-kafka (librdkafka), serving delivery reports while producing."""
    from confluent_kafka import KafkaException, Producer

    delivered = 0
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(str(err))
        else:
            delivered += 1

    producer = Producer(confluent_config(ctx.settings))
    metadata = producer.list_topics(topic, timeout=30)
    topic_meta = metadata.topics.get(topic)
    if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
        raise RuntimeError(f"confluent-kafka sees no usable metadata for {topic}: "
                           f"{topic_meta.error if topic_meta else 'missing'}")
    # Connect and obtain the idempotent producer id before the clock starts.
    warmup_key, warmup_value = events.pairs[0]
    for _ in range(WARMUP_RECORDS):
        producer.produce(topic, warmup_value, warmup_key, on_delivery=on_delivery)
    if producer.flush(30) or errors or delivered != WARMUP_RECORDS:
        raise RuntimeError(f"confluent-kafka: the warm-up records were not delivered ({errors[:1] or 'timeout'})")
    delivered = 0
    before, _ = end_offset_total(ctx.settings, topic)
    ctx.progress("confluent-kafka: producing %s events to %s", f"{events.count:,}", topic)
    produce, poll = producer.produce, producer.poll
    queue_full_waits = 0
    started = time.perf_counter()
    for key, value in events.pairs:
        while True:
            try:
                produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                queue_full_waits += 1
                poll(0.05)
        poll(0)
    remaining = producer.flush(60)
    seconds = time.perf_counter() - started
    if remaining:
        raise RuntimeError(f"confluent-kafka: {remaining:,} messages still undelivered after flush(60)")
    if errors:
        raise KafkaException(f"confluent-kafka: {len(errors):,} delivery errors, the first: {errors[0]}")
    if delivered != events.count:
        raise RuntimeError(f"confluent-kafka: {delivered:,} delivery reports for {events.count:,} events")
    after, _ = end_offset_total(ctx.settings, topic)
    growth = _verify_growth("confluent-kafka", topic, before, after, events.count)
    run = ProduceRun("confluent-kafka", events.count, seconds, growth)
    ctx.progress("confluent-kafka: %s events/s (%.2f s, %d queue-full waits)",
                 f"{run.events_per_second:,.0f}", seconds, queue_full_waits)
    return run


def kafka_broker_versions(settings: Settings) -> dict[str, str | None]:
    """The broker's version: inferred from its ApiVersions, and exact from the broker jars when it runs here."""
    from kafka import KafkaAdminClient

    versions: dict[str, str | None] = {"kafka_broker": None, "kafka_broker_api": None}
    admin = KafkaAdminClient(**settings.kafka_admin_config(client_id="reelytics-bench-admin"))
    try:
        brokers = admin.describe_cluster().get("brokers") or []
        if brokers:
            data = admin.get_broker_version_data(brokers[0]["broker_id"])
            versions["kafka_broker_api"] = data.broker_version_str
    except Exception:
        logger.warning("could not read the Kafka broker's API version", exc_info=True)
    finally:
        admin.close()
    versions["kafka_broker"] = _embedded_broker_jar_version(settings) or versions["kafka_broker_api"]
    return versions


def _embedded_broker_jar_version(settings: Settings) -> str | None:
    """Version of the kafka-server jar Reelytics runs the broker from, when the broker is on loopback."""
    import ipaddress

    if len(settings.kafka_bootstrap_list) != 1:
        return None
    host = settings.kafka_bootstrap_list[0].rpartition(":")[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    jars: Path = settings.jars_dir / "kafka-broker"
    if not loopback or not jars.is_dir():
        return None
    for jar in sorted(jars.glob("kafka-server-[0-9]*.jar")):
        return jar.stem.removeprefix("kafka-server-")
    return None


# --- Redis --------------------------------------------------------------------------------------------


def percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100.0 * len(sorted_values))))
    return float(sorted_values[rank - 1])


def _us(ns: float) -> float:
    return round(ns / 1_000.0, 1)


def raw_ping_latency_ns(settings: Settings, count: int) -> list[int]:
    """Sorted round trips of an inline PING over a bare TCP socket: the floor under any client's latency.

    Only for a plain ``redis://`` URL without a password; empty otherwise.
    """
    import socket
    from urllib.parse import urlparse

    if urlparse(settings.redis_url).scheme != "redis" or settings.redis_password is not None or \
            urlparse(settings.redis_url).password:
        return []
    sock = socket.create_connection(settings.redis_host_port, timeout=5)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        perf = time.perf_counter_ns
        samples: list[int] = []
        for _ in range(count):
            t0 = perf()
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                reply += chunk
            samples.append(perf() - t0)
            if reply != b"+PONG\r\n":
                raise RuntimeError(f"unexpected reply to PING: {reply!r}")
        return sorted(samples)
    finally:
        sock.close()


def _redis_persistence(client: Any) -> dict[str, str | None]:
    """appendonly / appendfsync / save of the server (None where CONFIG GET is not allowed)."""
    try:
        found = client.config_get("append*")
        found.update(client.config_get("save"))
    except Exception:  # managed servers often rename or forbid CONFIG
        return {"appendonly": None, "appendfsync": None, "save": None}
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in found.items()}
    return {name: text.get(name) for name in ("appendonly", "appendfsync", "save")}


def redis_latency(ctx: BenchContext) -> tuple[dict[str, float], dict[str, Any], str | None]:
    """SET then GET round trips on one redis-py connection; returns (figures, notes, server version).

    The keys are written first through a pipeline, the connection is warmed up with GETs, then every key is
    overwritten with timed sequential SETs and read back with timed sequential GETs of random keys.
    """
    client = ctx.settings.redis_client()
    prefix = f"{ctx.settings.redis_key_prefix}:bench:baseline:{uuid.uuid4().hex[:8]}:"
    keys = [f"{prefix}{i}".encode() for i in range(REDIS_KEYS)]
    rng = random.Random(EVENT_SEED)
    gets = QUICK_GETS if ctx.quick else FULL_GETS
    perf = time.perf_counter_ns
    try:
        server_version = str(client.info("server").get("redis_version"))
        persistence = _redis_persistence(client)
        ctx.progress("redis: writing %s keys of %d bytes under %s*", f"{len(keys):,}", REDIS_VALUE_BYTES, prefix)
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, rng.randbytes(REDIS_VALUE_BYTES), ex=REDIS_KEY_TTL_SECONDS)
            pipe.execute()
        order = [keys[rng.randrange(len(keys))] for _ in range(gets)]
        for key in order[:REDIS_WARMUP_GETS]:
            client.get(key)

        ctx.progress("redis: %s sequential SETs", f"{len(keys):,}")
        values = [rng.randbytes(REDIS_VALUE_BYTES) for _ in keys]
        set_ns: list[int] = []
        for key, value in zip(keys, values, strict=True):
            t0 = perf()
            client.set(key, value, ex=REDIS_KEY_TTL_SECONDS)
            set_ns.append(perf() - t0)

        ctx.progress("redis: %s sequential GETs", f"{gets:,}")
        get_ns: list[int] = []
        misses = 0
        started = perf()
        for key in order:
            t0 = perf()
            value = client.get(key)
            get_ns.append(perf() - t0)
            if value is None or len(value) != REDIS_VALUE_BYTES:
                misses += 1
        total_ns = perf() - started
        if misses:
            raise RuntimeError(f"redis: {misses:,} of {gets:,} GETs did not return the value just written")
        ping_ns = raw_ping_latency_ns(ctx.settings, min(gets, 5_000))
    finally:
        with client.pipeline(transaction=False) as pipe:
            for start in range(0, len(keys), 1_000):
                pipe.unlink(*keys[start:start + 1_000])
            deleted = sum(pipe.execute())
        client.close()
        logger.info("redis: deleted %d benchmark keys", deleted)
    set_ns.sort()
    get_ns.sort()
    figures = {
        "redis_get_p50_us": _us(percentile(get_ns, 50)),
        "redis_get_p99_us": _us(percentile(get_ns, 99)),
        "redis_set_p50_us": _us(percentile(set_ns, 50)),
    }
    notes = {
        "keys": len(keys),
        "value_bytes": REDIS_VALUE_BYTES,
        "gets": gets,
        "sets": len(set_ns),
        "warmup_gets": min(REDIS_WARMUP_GETS, gets),
        "get_p999_us": _us(percentile(get_ns, 99.9)),
        "get_max_us": _us(get_ns[-1]),
        "get_mean_us": _us(sum(get_ns) / len(get_ns)),
        "gets_per_second": round(gets / (total_ns / 1e9)),
        "set_p99_us": _us(percentile(set_ns, 99)),
        "raw_socket_ping_p50_us": _us(percentile(ping_ns, 50)) if ping_ns else None,
        "raw_socket_ping_p99_us": _us(percentile(ping_ns, 99)) if ping_ns else None,
        "raw_socket_ping_samples": len(ping_ns),
        "server_persistence": persistence,
        "client": "redis-py, one connection, sequential GETs of random existing keys",
        "server": "{}:{}".format(*ctx.settings.redis_host_port),
    }
    ctx.progress("redis: GET p50 %.1f us, p99 %.1f us; SET p50 %.1f us", figures["redis_get_p50_us"],
                 figures["redis_get_p99_us"], figures["redis_set_p50_us"])
    return figures, notes, server_version


# --- the benchmark ------------------------------------------------------------------------------------


@benchmark("baselines", packages=("kafka-python", "confluent-kafka", "lz4", "redis", "hiredis"))
def baselines(ctx: BenchContext) -> Outcome:
    """Raw client ceilings: kafka-python vs librdkafka produce rate, redis-py GET/SET latency."""
    import confluent_kafka

    settings = ctx.settings
    count = QUICK_EVENTS if ctx.quick else FULL_EVENTS
    ctx.progress("building and validating %s heartbeat events", f"{count:,}")
    t0 = time.perf_counter()
    events = encoded_events(count)
    build_seconds = time.perf_counter() - t0
    ctx.progress("events ready: avg %.0f bytes (%.1f s)", events.value_bytes_avg, build_seconds)

    versions: dict[str, str | None] = kafka_broker_versions(settings)
    versions["librdkafka"] = confluent_kafka.libversion()[0]
    partitions = settings.kafka_partitions
    with bench_topic(settings, partitions) as topic:
        kafka_python_run = produce_kafka_python(ctx, topic, events)
        confluent_run = produce_confluent(ctx, topic, events)
        total, partition_count = end_offset_total(settings, topic)
        expected = 2 * (count + WARMUP_RECORDS)
        if total != expected:
            raise RuntimeError(f"{topic} holds {total:,} records; expected {expected:,} "
                               f"(two clients x {count:,} events + {WARMUP_RECORDS} warm-up)")

    redis_figures, redis_notes, redis_version = redis_latency(ctx)
    versions["redis_server"] = redis_version

    producer_config = {k: v for k, v in kafka_python_config(settings).items() if k != "bootstrap_servers"}
    return Outcome(
        figures={
            "kafka_python_produce_eps": round(kafka_python_run.events_per_second),
            "confluent_kafka_produce_eps": round(confluent_run.events_per_second),
            **redis_figures,
        },
        notes={
            "event_type": EventType.HEARTBEAT.value,
            "events": count,
            "event_bytes_avg": round(events.value_bytes_avg, 1),
            "key_bytes_avg": round(events.key_bytes / count, 1),
            "event_build_seconds": round(build_seconds, 2),
            "kafka": {
                "bootstrap_servers": settings.kafka_bootstrap_servers,
                "topic_partitions": partition_count,
                "replication_factor": settings.kafka_replication_factor,
                "kafka_python": {**kafka_python_run.notes(events.value_bytes), "config": producer_config},
                "confluent_kafka": {**confluent_run.notes(events.value_bytes),
                                    "config": {k: v for k, v in confluent_config(settings).items()
                                               if k != "bootstrap.servers"}},
                "warmup_records_per_client": WARMUP_RECORDS,
                "timed_from": "first send to flush() returning, after a warm-up record per client; "
                              "end offsets checked to grow by exactly the events sent",
            },
            "redis": redis_notes,
        },
        versions=versions,
    )

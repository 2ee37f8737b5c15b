"""The collector's Kafka producer: librdkafka with acks=all and idempotence, awaited per request.

:meth:`CollectorProducer.publish` hands every record of a request to librdkafka and resolves once each has its
delivery report, so the collector answers "accepted" only for what the broker acknowledged. A background
thread serves the delivery reports (``poll``) and wakes the event loop with ``call_soon_threadsafe``.
``message.timeout.ms`` bounds the wait: when no broker answers, the records fail after that time and the
collector answers 503 for them instead of holding the request forever.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_DELIVERY_TIMEOUT_S = 10.0
"""How long librdkafka keeps trying to deliver a record before reporting it failed."""

_QUEUE_FULL_WAIT_S = 0.005
_ERROR_LOG_INTERVAL_S = 10.0
"""librdkafka repeats "all brokers down" every second while Kafka is away; one line per interval is enough."""


def producer_config(settings: Settings, *, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
                    **overrides: Any) -> dict[str, Any]:
    """librdkafka settings of the collector: the project's delivery guarantees and a bounded delivery time."""
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(settings.kafka_bootstrap_list),
        "client.id": "reelytics-collector",
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
        "message.timeout.ms": int(delivery_timeout_s * 1000),
        # After a broker restart, reconnect within a second rather than backing off for up to 10 s.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(overrides)
    return config


class _Pending:
    """The delivery results of one request's records; resolves a future when the last report arrives."""

    __slots__ = ("errors", "_left", "_lock", "_loop", "future")

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.errors: list[str | None] = [None] * count
        self._left = count
        self._lock = threading.Lock()
        self._loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def delivered(self, index: int, err: Any, _msg: Any = None) -> None:
        """Delivery callback (poll thread) or a local failure (event loop thread)."""
        if err is not None:
            self.errors[index] = err.str() if hasattr(err, "str") else str(err)
        with self._lock:
            self._left -= 1
            done = self._left == 0
        if done:
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class CollectorProducer:
    """A confluent-kafka Producer whose sends can be awaited from asyncio, with its poll thread."""

    def __init__(self, settings: Settings, *, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
                 **overrides: Any) -> None:
        self.delivery_timeout_s = delivery_timeout_s
        self._config = producer_config(settings, delivery_timeout_s=delivery_timeout_s, error_cb=self._on_error,
                                       **overrides)
        self._producer: Any = None
        self._retiring: list[Any] = []
        self._fatal: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swap = threading.Lock()
        self._last_logged: dict[int, float] = {}

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the producer and start serving its delivery reports."""
        from confluent_kafka import Producer

        if self._producer is not None:
            return
        self._producer = Producer(self._config)
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="collector-kafka-poll", daemon=True)
        self._thread.start()
        logger.info("Kafka producer for %s started", self._config["bootstrap.servers"])

    def close(self, timeout: float = 10.0) -> int:
        """Stop polling and flush; return how many records were still undelivered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        left = 0
        for producer in [*self._retiring, self._producer]:
            if producer is not None:
                left += producer.flush(timeout)
        self._producer, self._retiring, self._thread = None, [], None
        if left:
            logger.warning("%d records were still undelivered when the producer closed", left)
        return left

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            producer = self._producer
            if producer is not None:
                producer.poll(0.05)
            for old in list(self._retiring):
                old.poll(0)
                if len(old) == 0:
                    self._retiring.remove(old)
            if producer is None:
                time.sleep(0.05)

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            # An idempotent producer that lost its sequence state cannot go on; a fresh one takes over.
            logger.error("fatal Kafka producer error, replacing the producer: %s", err.str())
            self._fatal = err.str()
            return
        now = time.monotonic()
        if now - self._last_logged.get(err.code(), -_ERROR_LOG_INTERVAL_S) >= _ERROR_LOG_INTERVAL_S:
            self._last_logged[err.code()] = now
            logger.warning("Kafka producer: %s", err.str())

    def _replace_if_fatal(self) -> None:
        from confluent_kafka import Producer

        with self._swap:
            if self._fatal is None:
                return
            old, self._producer = self._producer, Producer(self._config)
            self._fatal = None
            if old is not None:
                old.purge()
                self._retiring.append(old)

    # --- sending -----------------------------------------------------------------------------------------
    async def publish(self, records: Sequence[tuple[str, bytes, bytes]]) -> list[str | None]:
        """Produce ``(topic, key, value)`` records and wait for their delivery reports.

        Returns:
            One entry per record: None when Kafka acknowledged it, otherwise why it was not.
        """
        if not records:
            return []
        if self._producer is None:
            raise RuntimeError("the producer is not started; call start() first")
        self._replace_if_fatal()
        from confluent_kafka import KafkaException

        loop = asyncio.get_running_loop()
        pending = _Pending(len(records), loop)
        produce = self._producer.produce
        deadline = time.monotonic() + self.delivery_timeout_s
        for index, (topic, key, value) in enumerate(records):
            callback = functools.partial(pending.delivered, index)
            while True:
                try:
                    produce(topic, value, key, on_delivery=callback)
                    break
                except BufferError:
                    # The local queue is full: let the poll thread drain it, unless that takes too long.
                    if time.monotonic() > deadline:
                        pending.delivered(index, "the producer's local queue stayed full")
                        break
                    await asyncio.sleep(_QUEUE_FULL_WAIT_S)
                except KafkaException as exc:
                    pending.delivered(index, exc.args[0] if exc.args else exc)
                    break
        try:
            # The reports come within message.timeout.ms; the margin only guards against a lost report.
            await asyncio.wait_for(asyncio.shield(pending.future), timeout=self.delivery_timeout_s + 5.0)
        except TimeoutError:
            logger.error("no delivery report for some of %d records after %.0f s", len(records),
                         self.delivery_timeout_s + 5.0)
            return [error or "no delivery report in time" for error in pending.errors]
        return list(pending.errors)

    # --- health ------------------------------------------------------------------------------------------
    def missing_topics(self, names: Sequence[str], *, timeout: float = 2.0) -> list[str]:
        """The topics among ``names`` the broker does not have; raises when no broker answers in ``timeout``."""
        if self._producer is None:
            raise RuntimeError("the producer is not started")
        metadata = self._producer.list_topics(timeout=timeout)
        return [name for name in names if name not in metadata.topics]

"""Query progress of the speed layer, logged and kept in Redis where `reelytics status` and monitoring read it.

:class:`ProgressRecorder` reads Spark's query events through a ``StreamingQueryListener`` in the JVM
(``reelytics.speed.ProgressBuffer``, which keeps each event's JSON until a thread here takes them all, one call
into the JVM every ``poll_s``) and, after every micro-batch, stores the query's newest figures in
``KeyLayout.speed_progress(name)`` (input and processed rows/s, batch duration, watermark,
state rows, rows dropped by the watermark, i.e. late events the speed layer left to the batch layer) and adds
up the late events in ``late_rows_total``. The shared query's views aggregate each micro-batch and keep their own
per-topic cut-off: it writes its own watermark, late counts and time per view there
(:func:`speed_layer.job._record_progress`); its Spark watermark only bounds the de-duplication state, and the
events that drops as late are ``late_rows_before_views`` (and ``late_rows_before_views_total``).
It logs a line per query at most every ``log_every_s`` seconds (and every batch at DEBUG), so a long-running job
says what it is doing without flooding its log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from speed_layer.query import SHARED_QUERY
from warehouse_models.redis_keys import PROGRESS_TTL_SECONDS, KeyLayout
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from rich.table import Table

logger = logging.getLogger(__name__)


def progress_figures(progress: dict[str, Any]) -> dict[str, Any]:
    """The figures kept per query from one ``StreamingQueryProgress`` (as a dict)."""
    duration = progress.get("durationMs") or {}
    event_time = progress.get("eventTime") or {}
    states = progress.get("stateOperators") or []
    sources = progress.get("sources") or []
    return {
        "name": progress.get("name") or "",
        "batch_id": int(progress.get("batchId", -1)),
        "timestamp": progress.get("timestamp") or "",
        "num_input_rows": int(progress.get("numInputRows") or 0),
        "input_rows_per_second": round(float(progress.get("inputRowsPerSecond") or 0.0), 1),
        "processed_rows_per_second": round(float(progress.get("processedRowsPerSecond") or 0.0), 1),
        "batch_duration_ms": int(duration.get("triggerExecution") or 0),
        # Where the micro-batch's time went, as Spark measured it (the writer's own share is in ``addBatch``;
        # the shared query's ``view_ms`` splits that further): "addBatch=1298 queryPlanning=322 ...".
        "phase_ms": " ".join(f"{phase}={int(ms)}" for phase, ms in sorted(duration.items())
                             if phase != "triggerExecution"),
        "watermark": event_time.get("watermark") or "",
        "max_event_time": event_time.get("max") or "",
        "stateful": bool(states),
        "state_rows": sum(int(s.get("numRowsTotal") or 0) for s in states),
        "late_rows_dropped": sum(int(s.get("numRowsDroppedByWatermark") or 0) for s in states),
        "kafka_lag": _kafka_lag(sources),
        "kafka_lag_by_topic": json.dumps(kafka_lag_by_topic(sources), sort_keys=True),
        "end_offsets_total": _end_offsets_total(sources),
    }


def _offsets(value: Any) -> dict[str, Any]:
    """A source offset as reported in progress (a dict, or its JSON text) as a dict; {} when unreadable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _end_offsets_total(sources: list[dict[str, Any]]) -> int:
    """The sum over every topic and partition of the offsets the batch read up to (what it has consumed)."""
    return sum(int(offset) for source in sources for partitions in _offsets(source.get("endOffset")).values()
               for offset in (partitions or {}).values())


def kafka_lag_by_topic(sources: list[dict[str, Any]]) -> dict[str, int]:
    """Per topic, the records between the batch's end offsets and the newest offsets Kafka reported (a topic
    whose newest offsets are unknown is left out)."""
    lags: dict[str, int] = {}
    for source in sources:
        latest, end = _offsets(source.get("latestOffset")), _offsets(source.get("endOffset"))
        for topic, partitions in latest.items():
            done = end.get(topic) or {}
            lags[topic] = lags.get(topic, 0) + sum(max(0, int(offset) - int(done.get(partition, offset)))
                                                   for partition, offset in (partitions or {}).items())
    return lags


def _kafka_lag(sources: list[dict[str, Any]]) -> int:
    """Records between the batch's end offsets and the newest offsets Kafka reported, every topic (0 when
    unknown)."""
    return sum(kafka_lag_by_topic(sources).values())


_INSTALLED: list[ProgressRecorder] = []


def drain_all() -> None:
    """Record every event the installed recorders' JVM listeners kept so far (e.g. the last batches of stopped
    queries; Spark's listener bus is asynchronous, so an event still on its way is taken by the next poll)."""
    for recorder in list(_INSTALLED):
        recorder.drain()


class ProgressRecorder:
    """Keeps each speed query's newest progress in Redis and logs it, from the events the JVM listener buffers."""

    def __init__(self, client: Any, keys: KeyLayout, *, log_every_s: float = 30.0) -> None:
        self.client = client
        self.keys = keys
        self.log_every_s = log_every_s
        self._last_log: dict[str, float] = {}
        self._buffer: Any = None
        self._draining = threading.Lock()

    def install(self, spark: SparkSession, *, poll_s: float = 0.5) -> None:
        """Register the JVM listener on ``spark`` and start taking its events every ``poll_s`` seconds; without
        Reelytics' Spark classes the queries run and say so, but their progress does not reach Redis."""
        from py4j.java_gateway import JavaClass

        buffer_class = spark._jvm.reelytics.speed.ProgressBuffer  # type: ignore[union-attr]
        if not isinstance(buffer_class, JavaClass):
            logger.warning("the speed queries' progress will not reach Redis (`reelytics status` shows none): this "
                           "Spark session did not load Reelytics' Spark classes (reelytics.speed); run `bash "
                           "infra/install.sh` (it compiles them with javac), or `python -m infra.jvm`, then restart "
                           "the speed layer")
            return
        self._buffer = buffer_class()
        spark._jsparkSession.streams().addListener(self._buffer)  # type: ignore[union-attr]
        _INSTALLED.append(self)
        threading.Thread(target=self._poll, args=(poll_s,), name="speed-progress", daemon=True).start()

    def _poll(self, poll_s: float) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(poll_s)
            try:
                self.drain()
            except Exception:  # monitoring must never stop: log it and poll again
                logger.warning("could not record the speed queries' progress", exc_info=True)

    def drain(self) -> None:
        """Handle every event the JVM listener kept since the last call (one caller at a time, so a batch's
        progress never overwrites a newer one's)."""
        with self._draining:
            self._drain()

    def _drain(self) -> None:
        try:
            lines = str(self._buffer.drain()).splitlines()
        except Exception:  # the JVM went away (shutdown): nothing more to record
            logger.debug("could not read the query events", exc_info=True)
            return
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                logger.warning("unreadable query event from the JVM listener: %.200s", line)
                continue
            kind = event.get("kind")
            if kind == "progress":
                self.on_progress(event["progress"])
            elif kind == "started":
                logger.info("query %s started (id %s)", event.get("name"), event.get("id"))
            elif kind == "terminated":
                if event.get("exception"):
                    logger.error("query %s stopped with an error: %s", event.get("id"), event["exception"])
                else:
                    logger.info("query %s stopped", event.get("id"))

    def on_progress(self, progress: dict[str, Any]) -> None:
        """Store and log one micro-batch's progress (Spark's ``StreamingQueryProgress`` as a dict)."""
        try:
            figures = progress_figures(progress)
        except (ValueError, AttributeError, TypeError):
            logger.debug("unreadable query progress", exc_info=True)
            return
        name = figures["name"]
        if not name.startswith("speed-"):
            return
        try:
            key = self.keys.speed_progress(name)
            pipe = self.client.pipeline(transaction=False)
            kept = dict(figures)
            shared = name.startswith(f"speed-{SHARED_QUERY}@")
            if shared:
                # The shared query keeps its own per-topic cut-off and writes watermark and late rows itself; its
                # Spark watermark only bounds the de-duplication state, and what that drops as late comes first.
                kept["late_rows_before_views"] = kept.pop("late_rows_dropped")
                kept.pop("watermark")
            pipe.hset(key, mapping={k: str(v) for k, v in kept.items()})
            if shared:
                pipe.hincrby(key, "late_rows_before_views_total", figures["late_rows_dropped"])
            elif figures["stateful"]:
                pipe.hincrby(key, "late_rows_total", figures["late_rows_dropped"])
            pipe.expire(key, PROGRESS_TTL_SECONDS)
            pipe.sadd(self.keys.speed_queries(), name)
            pipe.expire(self.keys.speed_queries(), PROGRESS_TTL_SECONDS)
            pipe.execute()
        except Exception:  # monitoring must never stop a query
            logger.warning("could not store the progress of %s in Redis", name, exc_info=True)
        now = time.monotonic()
        level = logging.DEBUG
        if figures["num_input_rows"] and now - self._last_log.get(name, 0.0) >= self.log_every_s:
            self._last_log[name] = now
            level = logging.INFO
        logger.log(level, "%s batch %d: %d rows, %.0f rows/s in, %.0f rows/s processed, %d ms, watermark %s, "
                   "%d state rows, %d late rows left to batch", name, figures["batch_id"],
                   figures["num_input_rows"], figures["input_rows_per_second"],
                   figures["processed_rows_per_second"], figures["batch_duration_ms"], figures["watermark"] or "-",
                   figures["state_rows"], figures["late_rows_dropped"])



def read_progress(client: Any, keys: KeyLayout) -> list[dict[str, str]]:
    """Every speed query's newest progress from Redis (for `reelytics status`), sorted by name."""
    names = sorted(n.decode() if isinstance(n, bytes) else n for n in client.smembers(keys.speed_queries()))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.speed_progress(name))
    out = []
    for row in pipe.execute():
        if row:
            out.append({(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                        for k, v in row.items()})
    return out



def progress_table(client: Any, settings: Settings, *, pid: int | None) -> Table | None:
    """Each speed query's newest progress (None when none ran yet); ``pid``: the speed job's, if it runs here."""
    from rich.table import Table

    rows = read_progress(client, settings.keys)
    if not rows:
        return None
    table = Table(title=f"speed layer queries ({f'running, pid {pid}' if pid else 'no background process'})")
    for column in ("query", "batch", "at", "rows in/s", "processed/s", "batch ms", "watermark", "state rows",
                   "late (total)", "Kafka lag"):
        table.add_column(column, justify="left" if column in ("query", "at", "watermark") else "right")
    for row in rows:
        table.add_row(row.get("name", "?").split("@")[0], row.get("batch_id", "-"), row.get("timestamp", "-")[:19],
                      row.get("input_rows_per_second", "-"), row.get("processed_rows_per_second", "-"),
                      row.get("batch_duration_ms", "-"), (row.get("watermark") or "-")[:19],
                      row.get("state_rows", "-"), row.get("late_rows_total", "-"), row.get("kafka_lag", "-"))
    spent = [f"{row.get('name', '?').split('@')[0]}: {row['view_ms']}" for row in rows if row.get("view_ms")]
    if spent:
        table.caption = "ms per step of the last batch - " + "; ".join(spent)
    return table

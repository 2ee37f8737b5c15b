"""What each stage of the speed layer costs per event, measured apart on a quiet machine (no load generator).

The end-to-end benchmark (``bench/speed.py``) says how far the latency is from its targets; this one says where
the time goes, so the figures there can be read as a sum: a rate is sustainable only while the sum of the
per-event costs of every query times the rate stays well under the cores left by Kafka, Redis and the producer.

Stages, each timed in its own Spark job or call over the same heartbeats the load generator sends:

* **source** (a streaming query over a topic holding ``events`` records, available-now, no-op sink; the second
  of two runs, so plans are compiled): the Kafka read, then the parse with the envelope check
  (:func:`speed_layer.source.parse_records`), then the de-duplication by event id. Every speed query pays it.
* **shared views** (one micro-batch of ``batch`` parsed records, cached first so the source is not counted):
  each view of the shared query alone and all together, split as the progress row splits it: ``spark`` (the
  one job: each view's contributions projected and collected through Arrow; the stream builds that plan once,
  here it is built before the timing) and the view's driver-side Arrow reduction and Redis writes (``apply``);
  then every view on a 1,000-event micro-batch, whose cost is mostly fixed (``shared_batch_*``, with the calls
  the writer makes into the JVM, ``shared_batch_jvm_calls``).
* **trickle** (a stream shaped like the shared query: Kafka, parse and check, de-duplication, 1 s trigger, under
  20 events/s, so each micro-batch holds a handful): the median batch when its foreachBatch only collects the
  rows (the floor of a micro-batch on this stack), the same without the de-duplication state, and with every
  shared view.
* **CPU per event** (sessions of 10 heartbeats, 10 s apart, in topics of their own): each query alone, the shared
  one and view_end (the one with session state, kept in the JVM), available-now over the same records in
  micro-batches of 10,000 (a 1 s trigger's at 10,000 events/s), the second of two runs; the CPU seconds of the
  driver's Python, Spark's JVM and the Redis server, per event. Their sum times a rate is the cores the speed
  layer needs at that rate, before the producer and Kafka's broker (``cpu_cores_at_10k``).

Figures are microseconds of wall time per event on this machine's cores (Spark runs its tasks on all of them),
except the CPU ones.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.harness import BenchContext, Outcome, benchmark
from bench.speed import _cleanup, heartbeat, throwaway_run
from warehouse_models.events import TopicKind, format_timestamp
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)


def _heartbeats(count: int, *, run: str, offset: int = 0) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` heartbeats as the load generator sends them (one user each)."""
    ts = format_timestamp(datetime.now(timezone.utc))
    return [heartbeat(run, n, ts, event_id=uuid.uuid4().hex, position=n % 7200) for n in range(offset, offset + count)]


def _produce(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": ",".join(settings.kafka_bootstrap_list), "linger.ms": 5,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    for i, (key, value) in enumerate(records):
        while True:
            try:
                producer.produce(settings.topics.playback.name, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)


def _source_costs(spark: Any, settings: Settings, events: int) -> dict[str, float]:
    """Microseconds per record of the Kafka read, the parse and check, and the de-duplication (cumulative)."""
    from speed_layer.source import deduplicated, kafka_stream, parse_records

    def read() -> Any:
        return kafka_stream(spark, settings, [TopicKind.PLAYBACK]).coalesce(settings.speed_source_partitions)

    stages = {
        "kafka_read": lambda: read(),
        "parse_and_check": lambda: parse_records(read()),
        "deduplicate": lambda: deduplicated(parse_records(read()), settings),
    }
    out: dict[str, float] = {}
    for name, build in stages.items():
        for attempt in range(2):
            checkpoint = tempfile.mkdtemp(prefix="bench-costs-")
            began = time.perf_counter()
            query = (build().writeStream.format("noop").option("checkpointLocation", checkpoint)
                     .trigger(availableNow=True).start())
            query.awaitTermination()
            elapsed = time.perf_counter() - began
            rows = sum(int(p["numInputRows"]) for p in query.recentProgress)
            if rows != events:
                raise RuntimeError(f"source stage {name} read {rows} records, expected {events}")
            if attempt == 1:
                out[name] = round(elapsed / rows * 1e6, 1)
    return out


class _JvmCalls:
    """Counts the driver's calls into the JVM (py4j round trips) while active: building a DataFrame plan in Python
    costs one or more per column expression and per DataFrame method."""

    def __init__(self) -> None:
        self.count = 0
        self._original: Any = None

    def __enter__(self) -> _JvmCalls:
        from py4j.clientserver import ClientServerConnection

        self._original = original = ClientServerConnection.send_command
        counter = self

        def counted(connection: Any, command: str) -> Any:
            counter.count += 1
            return original(connection, command)

        ClientServerConnection.send_command = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from py4j.clientserver import ClientServerConnection

        ClientServerConnection.send_command = self._original  # type: ignore[method-assign]


def _shared_view_costs(spark: Any, settings: Settings, batch: int) -> dict[str, Any]:
    """Per view of the shared query (and all together): Spark and driver-side microseconds per event."""
    from speed_layer.job import plan_queries, shared_projection, shared_writer, views
    from speed_layer.source import parse_records

    client = settings.redis_client()
    shared = [v.name for v in views() if not v.stateful]
    offset = 0

    def parsed_batch() -> Any:
        nonlocal offset
        records = _heartbeats(batch, run="costs", offset=offset)
        now = datetime.now(timezone.utc)
        rows = [(key, value, settings.topics.playback.name, i % 6, offset + i, now, 0)
                for i, (key, value) in enumerate(records)]
        offset += batch
        frame = spark.createDataFrame(rows, "key BINARY, value BINARY, topic STRING, partition INT, offset LONG, "
                                            "timestamp TIMESTAMP, timestampType INT")
        cached = parse_records(frame.coalesce(settings.speed_source_partitions)).persist()
        cached.count()
        return cached

    def measure(names: list[str], size: int) -> dict[str, float]:
        """The last of three micro-batches of ``size`` events (the first compiles): Spark and apply ms, JVM calls."""
        nonlocal batch
        batch = size
        plan = plan_queries(views(names))[0]
        query = f"costs-{uuid.uuid4().hex[:8]}"
        write = shared_writer(settings, plan, query)
        figures: dict[str, float] = {}
        for batch_id in range(3):
            parsed = parsed_batch()
            # The stream builds this plan once; the writer's one job computes it from the cached records.
            frame = shared_projection(parsed, settings, plan)
            with _JvmCalls() as calls:
                write(frame, batch_id)
            parsed.unpersist()
            spent = dict(part.split("=") for part in
                         client.hget(settings.keys.speed_progress(query), "view_ms").decode().split())
            # The views are written side by side: their wall time together is ``views`` (with the cut-off before).
            figures = {"spark_ms": int(spent["spark"]),
                       "apply_ms": int(spent["views"]) + int(spent.get("late_cut", 0)), "jvm_calls": calls.count}
        return figures

    full = batch
    out: dict[str, Any] = {}
    for label, names in [*((name, [name]) for name in shared), ("all", shared)]:
        figures = measure(names, full)
        out[label] = {"spark": round(figures["spark_ms"] * 1000 / full, 1),
                      "apply": round(figures["apply_ms"] * 1000 / full, 1)}
        logger.info("shared view %s: %s us per event", label, out[label])
    out["small_batch"] = {"events": 1_000, **measure(shared, 1_000)}
    logger.info("every shared view on a 1,000-event micro-batch: %s", out["small_batch"])
    return out


TRICKLE_EPS = 20
"""Events/s of the trickle runs: a handful per micro-batch, so a batch's time is its fixed cost."""


def _trickle_batch_ms(spark: Any, settings: Settings, *, views: bool, seconds: float,
                      deduplicate: bool = True) -> dict[str, float]:
    """Median trigger and addBatch ms of a shared-query-shaped stream (Kafka, parse and check, de-duplication
    unless ``deduplicate`` is False, 1 s trigger) under a trickle of events: its foreachBatch only collects the
    rows (``views`` False: the floor of a micro-batch here) or runs every shared view (True)."""
    import statistics

    from bench.speed import Load
    from speed_layer.job import plan_queries, shared_projection, shared_writer
    from speed_layer.job import views as view_queries
    from speed_layer.source import deduplicated, kafka_stream, parse_records

    kinds = [TopicKind.PLAYBACK, TopicKind.INTERACTIONS, TopicKind.CATALOG]
    source = parse_records(
        kafka_stream(spark, settings, kinds, starting_offsets="latest").coalesce(settings.speed_source_partitions))
    if deduplicate:
        source = deduplicated(source, settings)
    if views:
        plan = plan_queries(view_queries([v.name for v in view_queries() if not v.stateful]))[0]
        source = shared_projection(source, settings, plan)
        sink = shared_writer(settings, plan, f"costs-trickle-{uuid.uuid4().hex[:6]}")
    else:
        def sink(batch: Any, batch_id: int) -> None:
            batch.toArrow()
    query = (source.writeStream.foreachBatch(sink).option("checkpointLocation", tempfile.mkdtemp(prefix="bench-"))
             .trigger(processingTime=f"{settings.speed_trigger_seconds} seconds").start())
    load = Load(settings, watch=())
    try:
        load.run_step(TRICKLE_EPS, seconds, settle_s=0.0)
    finally:
        load.close()
        progress = [p for p in query.recentProgress if int(p["numInputRows"]) > 0][-15:]
        query.stop()
    return {"trigger_ms": statistics.median(p["durationMs"]["triggerExecution"] for p in progress),
            "add_batch_ms": statistics.median(p["durationMs"].get("addBatch", 0) for p in progress),
            "rows_per_batch": statistics.median(int(p["numInputRows"]) for p in progress),
            "batches": len(progress)}


CPU_BATCH = 10_000
"""Records per micro-batch of the CPU budget: a 1 s trigger's batch at 10,000 events/s."""


def _cpu_seconds(client: Any) -> dict[str, float]:
    """CPU seconds so far of this process (the driver's Python), its children (Spark's JVM) and the Redis server."""
    import psutil

    from bench.speed import tree_cpu_seconds

    own = psutil.Process().cpu_times()
    driver = own.user + own.system
    info = client.info("cpu")
    return {"driver_python": driver, "spark_jvm": tree_cpu_seconds(os.getpid()) - driver,
            "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}


CPU_HEARTBEATS_PER_SESSION = 10
"""The CPU budget's traffic: sessions of this many heartbeats, 10 s apart, so view_end keeps state and moves
timers as under real traffic (one heartbeat per session would end every session)."""


def _cpu_budget(spark: Any, settings: Settings, events: int, client: Any, *, per_batch: int) -> dict[str, Any]:
    """CPU microseconds per event of each process (driver Python, Spark's JVM, Redis) for each query of the speed
    layer, the shared one (every view without session state) and view_end, each run alone available-now over the
    same heartbeats in micro-batches of ``per_batch`` records (each session's heartbeats land in different
    batches, as in 1 s micro-batches at that rate); the second of two runs on fresh checkpoints and key prefixes
    (the first compiles the plans and warms the JIT)."""
    import shutil

    from bench.ingestion_bronze import _delete_topics
    from bench.speed import delete_keys
    from infra.kafka import ensure_topics
    from speed_layer.job import run_speed_available_now, views

    tag = uuid.uuid4().hex[:6]
    traffic = settings.model_copy(update={"kafka_topic_prefix": f"{settings.kafka_topic_prefix}-cpu"})
    ensure_topics(traffic)
    sessions = max(1, events // CPU_HEARTBEATS_PER_SESSION)
    start = datetime.now(timezone.utc) - timedelta(seconds=10 * CPU_HEARTBEATS_PER_SESSION + 60)
    _produce(traffic, [heartbeat(tag, n, format_timestamp(start + timedelta(seconds=10 * (i // sessions),
                                                                            milliseconds=n % 1000)),
                                 event_id=uuid.uuid4().hex, position=10 * (i // sessions))
                       for i in range(events) for n in (i % sessions,)])
    queries = {"shared": [v.name for v in views() if not v.stateful], "view_end": ["view_end"]}
    out: dict[str, Any] = {}
    try:
        for label, names in queries.items():
            for attempt in range(2):
                checkpoints = tempfile.mkdtemp(prefix="bench-costs-")
                run = traffic.model_copy(update={"checkpoint_root": checkpoints,
                                                 "redis_key_prefix": f"{settings.redis_key_prefix}-{label}{attempt}",
                                                 "speed_kafka_max_offsets_per_trigger": per_batch})
                before, started = _cpu_seconds(client), time.monotonic()
                run_speed_available_now(spark, run, names=names)
                wall, after = time.monotonic() - started, _cpu_seconds(client)
                delete_keys(run, client)
                shutil.rmtree(checkpoints, ignore_errors=True)
            out[label] = {"wall": round(wall * 1e6 / events, 1),
                          **{name: round((after[name] - before[name]) * 1e6 / events, 1) for name in before}}
            logger.info("%s query alone: %s us per event", label, out[label])
    finally:
        _delete_topics(traffic)
    out["total"] = {name: round(sum(out[q][name] for q in queries), 1) for name in ("driver_python", "spark_jvm",
                                                                                        "redis")}
    out["events"], out["sessions"], out["records_per_batch"] = events, sessions, per_batch
    return out


@benchmark("speed_costs", packages=("pyspark", "confluent-kafka", "redis"))
def speed_costs(ctx: BenchContext) -> Outcome:
    """Per-event cost of each speed-layer stage (source, each shared view), measured apart."""
    from infra.kafka import ensure_topics
    from infra.spark import build_spark_session
    from speed_layer.job import speed_master, speed_session_conf

    events = 20_000 if ctx.quick else 100_000
    batch = 5_000 if ctx.quick else 20_000
    run, workdir = throwaway_run(ctx.settings, "costs")
    run = run.model_copy(update={"spark_master": speed_master(run)})
    ensure_topics(run)
    client = run.redis_client()
    spark = build_spark_session(run, app_name="bench-speed-costs", ui=False)
    for key, value in speed_session_conf(run).items():
        spark.conf.set(key, value)
    try:
        ctx.progress("producing %d heartbeats", events)
        _produce(run, _heartbeats(events, run=uuid.uuid4().hex[:6]))
        ctx.progress("source stages over %d records", events)
        source = _source_costs(spark, run, events)
        ctx.progress("shared views on micro-batches of %d records", batch)
        shared = _shared_view_costs(spark, run, batch)
        trickle_s = 20.0 if ctx.quick else 45.0
        ctx.progress("a shared-query stream under %d events/s: collecting only, then every view", TRICKLE_EPS)
        trickle = {"collect_only": _trickle_batch_ms(spark, run, views=False, seconds=trickle_s),
                   "collect_only_without_dedupe": _trickle_batch_ms(spark, run, views=False, seconds=trickle_s,
                                                                    deduplicate=False),
                   "every_view": _trickle_batch_ms(spark, run, views=True, seconds=trickle_s)}
        ctx.progress("CPU per event of each query alone, over sessions of %d heartbeats", CPU_HEARTBEATS_PER_SESSION)
        cpu = _cpu_budget(spark, run, events, client, per_batch=CPU_BATCH)
    finally:
        _cleanup(run, client)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    source_us = source["deduplicate"]
    every_view_us = source_us + shared["all"]["spark"] + shared["all"]["apply"]
    figures = {
        "source_kafka_read_us": source["kafka_read"],
        "source_parse_and_check_us": round(source["parse_and_check"] - source["kafka_read"], 1),
        "source_deduplicate_us": round(source["deduplicate"] - source["parse_and_check"], 1),
        "shared_views_spark_us": shared["all"]["spark"],
        "shared_views_apply_us": shared["all"]["apply"],
        # The shared query, then the stateful query's (view_end's) own source (its state step in the JVM beyond the
        # source is not counted, so this is a lower bound of the per-event wall time of every view).
        "every_view_floor_us": round(every_view_us + source_us, 1),
        # What a shared micro-batch costs whatever its size: the job on a 1,000-event batch, its driver-side writes,
        # and the calls into the JVM the driver makes to build the batch's plan.
        "shared_batch_spark_s_at_1k": round(shared["small_batch"]["spark_ms"] / 1000, 3),
        "shared_batch_apply_s_at_1k": round(shared["small_batch"]["apply_ms"] / 1000, 3),
        "shared_batch_jvm_calls": shared["small_batch"]["jvm_calls"],
        # A micro-batch of a few events in the stream (median of the last 15): the floor of this stack (read,
        # check, de-duplicate, collect, commit) and the same with every shared view.
        "trickle_batch_s_collect_only": round(trickle["collect_only"]["trigger_ms"] / 1000, 3),
        # The same without the de-duplication state (its shuffle, state store and commit): what that costs a batch.
        "trickle_batch_s_without_dedupe": round(trickle["collect_only_without_dedupe"]["trigger_ms"] / 1000, 3),
        "trickle_batch_s_every_view": round(trickle["every_view"]["trigger_ms"] / 1000, 3),
        # CPU per event of each process, both queries (each alone, available-now): what a rate costs in cores.
        "cpu_us_per_event_driver_python": cpu["total"]["driver_python"],
        "cpu_us_per_event_spark_jvm": cpu["total"]["spark_jvm"],
        "cpu_us_per_event_redis": cpu["total"]["redis"],
        # The cores those three take at 10,000 events/s (the producer and Kafka's broker come on top).
        "cpu_cores_at_10k": round(sum(cpu["total"].values()) * 10_000 / 1e6, 2),
    }
    return Outcome(
        figures=figures,
        notes={
            "source_cumulative_us": source,
            "shared_views_us": shared,
            "trickle": {**trickle, "events_per_s": TRICKLE_EPS},
            "cpu_us_per_event": cpu,
            "events": events,
            "batch": batch,
            "unit": "microseconds of wall time per event, Spark on every core of the machine, nothing else running",
            "reading": "1e6 / every_view_floor_us is the most events/s every view could take on this machine with "
                       "nothing else running; the end-to-end targets need the sum well under the budget left by "
                       "Kafka, Redis and the producer",
            "master": run.spark_master,
        },
    )

"""The batch layer benchmark: an hourly rebuild of 1,000,000 events, a daily rebuild, analyst queries on two engines.

Three simulated worlds, each written straight into bronze Delta tables through the bronze transform
(:func:`batch_layer.bronze.transform.bronze_frame`, the shared validator included) from Kafka-shaped records
(topic, partition, offset, timestamp, key, value), without a broker: preparing bronze is not what is measured.
The Kafka timestamp of a record is its event time, as if every event arrived on time. The hour and the day
are at fixed times (:data:`HOUR_AT`) and their bronze tables are cached like the month
(``<cache dir>/bench/batch_bronze/<key>``, keyed by the world, its size and a digest of the simulator, the bronze
code and the writers here: :func:`cached_bronze`), then copied into each run's own Delta root.

* **Hourly rebuild**: one event hour holding ``--events`` events (the users are calibrated from a pilot hour).
  Timed: ``build_silver`` of the hour, ``build_fact`` of its date and ``build_marts`` of its date (every mart
  reads that date) — what the hourly assets and the marts do after the hour. The dimensions are built first,
  untimed (the nightly run keeps them).
* **Daily rebuild**: a simulated day of ``--day-users`` users. Timed: silver for all 24 hours, the date's facts,
  the dimensions and the date's marts.
* **Analyst queries**: a simulated month (``--days`` days of ``--month-users`` users ending on the fixed
  :data:`MONTH_END`) built to gold untimed, or reused: its gold tables are kept under the cache directory
  (``<cache dir>/bench/batch_month/<key>``, outside the clone), keyed by the scale and a digest of the code that
  builds them (:func:`month_cache_key`: the simulator, the bronze-to-gold batch code, the table definitions, the
  builders here and the Spark and Delta versions), so a change to any of them builds it again. Then the ten
  example questions of ``docs/schema.md`` (:data:`BENCH_QUERIES`) on DuckDB (``reelytics sql``'s views) and on
  Spark SQL, each one warm-up and three timed runs, the median kept; question 1's ``current_date - 1`` is the
  month's last date (:func:`pinned_sql`), so the cached month answers it on any day. ``sql_cli_cold_start_s`` is
  the median wall time of three ``reelytics sql`` processes counting the month's facts (start, settings, views
  over the ten tables, the query, the print).

``peak_rss_gb`` is the peak resident memory of this process and its children (the Spark JVM), sampled every
half second through the whole run; ``bench_wall_s`` the wall time of the whole benchmark. Everything but the
cached worlds is written under a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import BenchContext, Outcome, benchmark, process_tree_sum
from warehouse_models.events import TopicKind, encode, kafka_key, parse_timestamp, topic_kind
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from batch_layer.analyst import ExampleQuery

logger = logging.getLogger(__name__)

BENCH_QUERIES: tuple[int, ...] = tuple(range(1, 11))
"""The example questions timed (numbers in ``docs/schema.md``): all ten."""

MONTH_END = date(2026, 1, 1)
"""The analyst month ends the day before this date (fixed, so the cached month serves any day)."""

HOUR_AT = datetime(2025, 11, 27, 20, tzinfo=timezone.utc)
"""The hourly world's event hour, and the day before it the daily world's date (fixed, so their bronze tables are
cached like the month; each world has a Delta root of its own)."""

BRONZE_CODE: tuple[str, ...] = ("simulator", "batch_layer/bronze", "warehouse_models")
"""Packages whose code writes a world's bronze tables: a change to any file in them is a new key."""

MONTH_CACHE_KEPT = 2
"""Cached months kept per scale (the newest); older keys are removed when a new month is cached."""

MONTH_CODE: tuple[str, ...] = ("simulator", "batch_layer/bronze", "batch_layer/silver", "batch_layer/gold",
                               "batch_layer/marts", "warehouse_models")
"""Packages (relative to the repository) whose code builds the month: a change to any file in them is a new key."""

CLI_RUNS = 3

TIMED_RUNS = 3
PILOT_USERS = 1_000
"""Users of the pilot hour that calibrates the hourly world to about ``--events`` events (200 were 7 % off)."""
RECORD_CHUNK = 50_000
"""Kafka-shaped records staged per Parquet row group."""

SAMPLE_INTERVAL_S = 0.5


@dataclass(frozen=True)
class BatchScale:
    """How big each simulated world is."""

    hour_events: int = 1_000_000
    day_users: int = 2_000
    month_days: int = 30
    month_users: int = 100


QUICK_SCALE = BatchScale(hour_events=20_000, day_users=20, month_days=2, month_users=20)


def scale_for(options: Mapping[str, Any], *, quick: bool) -> BatchScale:
    """The scale of a run: the full one, or the quick one, with any option given on the command line on top."""
    base = QUICK_SCALE if quick else BatchScale()
    chosen = {
        "hour_events": options.get("events", base.hour_events),
        "day_users": options.get("day_users", base.day_users),
        "month_days": options.get("days", base.month_days),
        "month_users": options.get("month_users", base.month_users),
    }
    for name, value in chosen.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    return BatchScale(**{name: int(value) for name, value in chosen.items()})


def users_for_events(target_events: int, *, pilot_events: int, pilot_users: int) -> int:
    """Users whose hour holds about ``target_events`` events, at the pilot's events per user and hour."""
    if pilot_events <= 0:
        raise ValueError("the pilot hour produced no events")
    return max(1, math.ceil(target_events * pilot_users / pilot_events))


def kafka_records(events: Iterable[Mapping[str, Any]], *, partitions: int) -> Iterator[tuple[TopicKind, dict]]:
    """Each event as the record a broker would hold: its topic kind, and partition, offset, timestamp, key, value.

    The partition is a hash of the key modulo ``partitions`` (the same key always lands in the same partition),
    offsets count up per topic partition, and the timestamp is the event time.
    """
    offsets: dict[tuple[TopicKind, int], int] = {}
    for event in events:
        kind = topic_kind(event)
        key = kafka_key(event)
        partition = 0 if kind is TopicKind.CATALOG else zlib.crc32(key) % partitions
        offset = offsets.get((kind, partition), 0)
        offsets[(kind, partition)] = offset + 1
        yield kind, {"partition": partition, "offset": offset,
                     "timestamp": parse_timestamp(event["event_timestamp"]), "key": key, "value": encode(event)}


def median_seconds(runs: Sequence[float]) -> float:
    """The median of timed runs, rounded to the millisecond."""
    return round(statistics.median(runs), 3)


def query_figures(duckdb_runs: Mapping[int, Sequence[float]],
                  spark_runs: Mapping[int, Sequence[float]]) -> dict[str, float]:
    """``duckdb_query_max_s`` (the slowest query's median) and ``spark_over_duckdb_ratio`` (summed medians)."""
    if set(duckdb_runs) != set(spark_runs) or not duckdb_runs:
        raise ValueError("both engines must time the same, non-empty set of queries")
    duck = {n: median_seconds(runs) for n, runs in duckdb_runs.items()}
    spark = {n: median_seconds(runs) for n, runs in spark_runs.items()}
    return {
        "duckdb_query_max_s": max(duck.values()),
        "spark_over_duckdb_ratio": round(sum(spark.values()) / max(sum(duck.values()), 1e-6), 2),
    }


def bench_queries() -> list[ExampleQuery]:
    """The example queries of :data:`BENCH_QUERIES`, in that order."""
    from batch_layer.analyst import EXAMPLE_QUERIES

    return [EXAMPLE_QUERIES[number - 1] for number in BENCH_QUERIES]


def pinned_sql(sql: str, last_date: date) -> str:
    """A query with "yesterday" (``current_date - 1``) pinned to the month's last date."""
    return sql.replace("current_date - 1", f"DATE '{last_date.isoformat()}'")


# --- the cached month ---------------------------------------------------------------------------------------------

REPOSITORY = Path(__file__).resolve().parents[1]


def code_digest(root: Path = REPOSITORY, packages: Sequence[str] = MONTH_CODE, *,
                extra: Sequence[str] = ()) -> str:
    """A digest of every ``.py`` file under the packages (paths and contents) and of ``extra`` texts."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for text in extra:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()


def month_cache_key(*, users: int, days: int, end: date, code: str) -> str:
    """The cache key of a month: its scale, its end and the digest of the code that builds it."""
    return f"u{users}-d{days}-e{end.isoformat()}-{code[:16]}"


def builders_digest(packages: Sequence[str], builders: Sequence[Callable[..., Any]]) -> str:
    """:func:`code_digest` of ``packages``, the source of ``builders`` (functions here) and the Spark and Delta
    versions: what a cached world depends on."""
    import importlib.metadata

    sources = [inspect.getsource(f) for f in builders]
    versions = [f"{name}=={importlib.metadata.version(name)}" for name in ("pyspark", "delta-spark")]
    return code_digest(packages=packages, extra=[*sources, *versions])


def month_code_digest() -> str:
    """The month's :func:`builders_digest`: :data:`MONTH_CODE` and this module's month builders."""
    return builders_digest(MONTH_CODE, (build_month, write_bronze, stage_records, kafka_records,
                                        build_silver_hours, simulated))


def cached_month(spark: SparkSession, settings: Settings, cache: Path, *, users: int, days: int,
                 end: date = MONTH_END, code: str | None = None) -> tuple[Settings, dict[str, Any]]:
    """The month's gold tables from the cache, built first when its key is not there; its settings and size.

    A month is built under a temporary name next to the cached ones and renamed when complete (its
    ``month.json`` last), so an interrupted build is never reused; only its gold tables are kept.
    """
    key = month_cache_key(users=users, days=days, end=end, code=code or month_code_digest())
    entry = cache / key
    manifest = entry / "month.json"
    if manifest.exists():
        month = json.loads(manifest.read_text(encoding="utf-8"))
        logger.info("month %s reused from the cache", key)
        return _cached_settings(settings, entry), {**month, "cache": "reused", "cache_key": key}
    building = cache / f".{key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    started = time.monotonic()
    world, month = build_month(spark, settings, building, users=users, days=days, today=end)
    month["build_s"] = round(time.monotonic() - started, 1)
    gold = Path(world.delta_root_uri) / "gold"
    shutil.rmtree(entry, ignore_errors=True)
    (entry / "delta").mkdir(parents=True)
    shutil.move(str(gold), str(entry / "delta" / "gold"))
    shutil.rmtree(building, ignore_errors=True)
    manifest.write_text(json.dumps(month), encoding="utf-8")
    prune_cache(cache, keep=MONTH_CACHE_KEPT, scale=key.rsplit("-", 1)[0] + "-")  # a quick run keeps the full month
    return _cached_settings(settings, entry), {**month, "cache": "built", "cache_key": key}


def _cached_settings(settings: Settings, entry: Path) -> Settings:
    return settings.model_copy(update={"delta_root": str(entry / "delta")})


def bronze_code_digest() -> str:
    """A world's bronze :func:`builders_digest`: :data:`BRONZE_CODE` and this module's bronze writers."""
    return builders_digest(BRONZE_CODE, (write_bronze, stage_records, kafka_records, simulated))


def cached_bronze(spark: SparkSession, settings: Settings, cache: Path, world: Settings, *, key: str,
                  events: Callable[[], Iterable[Mapping[str, Any]]]) -> dict[str, int]:
    """Give ``world`` the bronze tables of ``events`` (records per table returned), from the cache when its key is
    there, else written once through the bronze transform and kept (built under a temporary name, then renamed).

    The tables are copied into the world's Delta root, so what the timed steps write never touches the cache.
    """
    entry = cache / key
    manifest = entry / "bronze.json"
    if not manifest.exists():
        building = cache / f".{key}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        staging = _world_settings(settings, building, "world")
        counts = write_bronze(spark, staging, events(), building / "staging")
        shutil.rmtree(entry, ignore_errors=True)
        (entry / "delta").mkdir(parents=True)
        shutil.move(str(Path(staging.delta_root_uri) / "bronze"), str(entry / "delta" / "bronze"))
        shutil.rmtree(building, ignore_errors=True)
        manifest.write_text(json.dumps(counts), encoding="utf-8")
        prune_cache(cache, keep=MONTH_CACHE_KEPT, scale=key.rsplit("-", 1)[0] + "-", manifest="bronze.json")
    else:
        logger.info("bronze %s reused from the cache", key)
    shutil.copytree(entry / "delta" / "bronze", Path(world.delta_root_uri) / "bronze", dirs_exist_ok=True)
    return {name: int(n) for name, n in json.loads(manifest.read_text(encoding="utf-8")).items()}


def prune_cache(cache: Path, *, keep: int, scale: str = "", manifest: str = "month.json") -> list[Path]:
    """Remove all but the ``keep`` newest complete entries whose key starts with ``scale`` (by their
    ``manifest``), and leftovers of builds that are not running any more; return what was removed."""
    complete = sorted((p for p in cache.iterdir() if p.name.startswith(scale) and (p / manifest).exists()),
                      key=lambda p: (p / manifest).stat().st_mtime, reverse=True)
    doomed = complete[keep:]
    for path in cache.iterdir():
        if path.name.startswith(".") and ".building-" in path.name:
            pid = path.name.rsplit("-", 1)[1]
            if not pid.isdigit() or not _alive(int(pid)):
                doomed.append(path)
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- memory -----------------------------------------------------------------------------------------------------


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its live descendants (0 when it is gone)."""
    return int(process_tree_sum(pid, lambda proc: proc.memory_info().rss))


class PeakRss:
    """Samples the resident memory of this process tree in a thread and keeps the peak."""

    def __init__(self, pid: int, *, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.pid, self.interval_s, self.peak_bytes = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self.pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self.pid))


# --- preparing bronze (not timed) -------------------------------------------------------------------------------

_RECORD_SCHEMA_FIELDS = (("partition", "int32"), ("offset", "int64"), ("key", "binary"), ("value", "binary"))


def _record_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field("topic", pa.string()), *(pa.field(n, getattr(pa, t)()) for n, t in
                                                        _RECORD_SCHEMA_FIELDS),
                      pa.field("timestamp", pa.timestamp("us", tz="UTC"))])


def stage_records(events: Iterable[Mapping[str, Any]], settings: Settings, directory: Path) -> dict[TopicKind, int]:
    """Write the events as Kafka-shaped records, one Parquet file per topic; return records per topic kind."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _record_schema()
    directory.mkdir(parents=True, exist_ok=True)
    writers: dict[TopicKind, pq.ParquetWriter] = {}
    buffers: dict[TopicKind, list[dict[str, Any]]] = {}
    counts: dict[TopicKind, int] = {}

    def flush(kind: TopicKind) -> None:
        if not buffers.get(kind):
            return
        if kind not in writers:
            writers[kind] = pq.ParquetWriter(directory / f"{kind.value}.parquet", schema)
        writers[kind].write_table(pa.Table.from_pylist(buffers[kind], schema=schema))
        buffers[kind] = []

    try:
        for kind, record in kafka_records(events, partitions=settings.kafka_partitions):
            record["topic"] = settings.topics.for_kind(kind).name
            buffers.setdefault(kind, []).append(record)
            counts[kind] = counts.get(kind, 0) + 1
            if len(buffers[kind]) >= RECORD_CHUNK:
                flush(kind)
        for kind in list(buffers):
            flush(kind)
    finally:
        for writer in writers.values():
            writer.close()
    return counts


def write_bronze(spark: SparkSession, settings: Settings, events: Iterable[Mapping[str, Any]],
                 staging: Path) -> dict[str, int]:
    """Land the events in the bronze tables through the bronze transform (as the streaming job would)."""
    from batch_layer.bronze.job import ensure_bronze_table
    from batch_layer.bronze.transform import bronze_frame
    from warehouse_models.tables import BRONZE_TABLES

    counts = stage_records(events, settings, staging)
    added: dict[str, int] = {}
    for spec in BRONZE_TABLES:
        path = ensure_bronze_table(spark, settings, spec)
        if spec.source_topic not in counts:
            continue
        records = spark.read.parquet(str(staging / f"{spec.source_topic.value}.parquet"))
        bronze_frame(records, spec).write.format("delta").mode("append").save(path)
        added[spec.name] = counts[spec.source_topic]
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("bronze written: %s", added)
    return added


def simulated(start: datetime, duration: timedelta, users: int) -> Iterator[dict[str, Any]]:
    """The simulator's events of a world (default seed and shape) over a range."""
    from simulator import SimulationConfig, simulate

    return simulate(SimulationConfig(start=start, duration=duration, users=users))


# --- the timed parts ---------------------------------------------------------------------------------------------


def _timed(steps: Sequence[tuple[str, Callable[[], Any]]]) -> dict[str, float]:
    """Run the steps in order; seconds of each and their ``total``."""
    seconds: dict[str, float] = {}
    for name, step in steps:
        started = time.monotonic()
        step()
        seconds[name] = round(time.monotonic() - started, 3)
        logger.info("%s: %.1f s", name, seconds[name])
    seconds["total"] = round(sum(seconds.values()), 3)
    return seconds


def _world_settings(settings: Settings, root: Path, name: str) -> Settings:
    return settings.model_copy(update={"delta_root": str(root / name / "delta"),
                                       "checkpoint_root": str(root / name / "checkpoints")})


def measure_hourly(spark: SparkSession, settings: Settings, root: Path, *, events: int,
                   hour: datetime, cache: Path) -> dict[str, Any]:
    """Time the rebuild of one event hour holding about ``events`` events (silver, fact, the date's marts)."""
    from batch_layer.gold.job import build_dims, build_fact
    from batch_layer.marts.job import build_marts
    from batch_layer.silver.job import build_silver

    pilot = sum(1 for _ in simulated(hour, timedelta(hours=1), PILOT_USERS))
    users = users_for_events(events, pilot_events=pilot, pilot_users=PILOT_USERS)
    world = _world_settings(settings, root, "hour")
    logger.info("hourly world: %d users (pilot: %d events for %d users)", users, pilot, PILOT_USERS)
    key = f"hour-u{users}-{hour:%Y%m%dT%H}-{bronze_code_digest()[:16]}"
    # A Dagster run starts a new process, so its JVM is cold; a cache miss writes the bronze tables first and
    # warms this one (JIT-compiled code, loaded classes), which makes the timed steps faster than a run's.
    jvm = "cold" if (cache / key / "bronze.json").exists() else "warm: this process wrote the hour's bronze first"
    bronze = cached_bronze(spark, settings, cache, world, key=key,
                           events=lambda: simulated(hour, timedelta(hours=1), users))
    build_dims(spark, world)
    silver: dict[str, int] = {}
    seconds = _timed([
        ("silver", lambda: silver.update(build_silver(spark, world, hours=[hour]))),
        ("fact", lambda: build_fact(spark, world, dates=[hour.date()])),
        ("marts", lambda: build_marts(spark, world, dates=[hour.date()])),
    ])
    return {"users": users, "bronze_records": sum(bronze.values()), "silver_rows": silver.get("rows", 0),
            "seconds": seconds, "jvm": jvm}


def build_silver_hours(spark: SparkSession, settings: Settings, hours: Sequence[datetime], *,
                       per_write: int = 1) -> dict[str, int]:
    """Silver ``per_write`` hours per build (the month: a day per build, as a backfill's run builds a date's
    hours); the summed counts."""
    from batch_layer.silver.job import build_silver

    totals: dict[str, int] = {}
    for first in range(0, len(hours), per_write):
        chunk = hours[first:first + per_write]
        for name, value in build_silver(spark, settings, hours=chunk).items():
            totals[name] = totals.get(name, 0) + value
        logger.info("silver hours %d-%d of %d (from %s) built", first + 1, first + len(chunk), len(hours),
                    chunk[0].isoformat())
    return totals


def measure_daily(spark: SparkSession, settings: Settings, root: Path, *, users: int, day: date,
                  cache: Path) -> dict[str, Any]:
    """Time the rebuild of a simulated day: its 24 silver hours in one build (as a backfill of the day runs them:
    one run of its hourly partitions, ``orchestration.defs.warehouse.assets.HOURS_PER_RUN``), then the date's
    facts, the dims and the date's marts (the daily partition)."""
    from batch_layer.gold.job import build_dims, build_fact
    from batch_layer.marts.job import build_marts
    from batch_layer.silver.job import build_silver, hours_between

    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    world = _world_settings(settings, root, "day")
    key = f"day-u{users}-{day:%Y%m%d}-{bronze_code_digest()[:16]}"
    bronze = cached_bronze(spark, settings, cache, world, key=key,
                           events=lambda: simulated(start, timedelta(days=1), users))
    hours = hours_between(start, start + timedelta(days=1))
    silver: dict[str, int] = {}
    seconds = _timed([
        ("silver", lambda: silver.update(build_silver(spark, world, hours=hours))),
        ("fact", lambda: build_fact(spark, world, dates=[day])),
        ("dims", lambda: build_dims(spark, world)),
        ("marts", lambda: build_marts(spark, world, dates=[day])),
    ])
    return {"users": users, "bronze_records": sum(bronze.values()), "silver_rows": silver.get("rows", 0),
            "seconds": seconds}


def build_month(spark: SparkSession, settings: Settings, root: Path, *, users: int, days: int,
                today: date) -> tuple[Settings, dict[str, Any]]:
    """Build the gold tables of a simulated month ending yesterday (untimed); its settings and its size."""
    from batch_layer.gold.job import build_dims, build_fact
    from batch_layer.marts.job import build_marts
    from batch_layer.silver.job import hours_between
    from warehouse_models.tables import FACT_STREAM_EVENTS

    end = datetime(today.year, today.month, today.day, tzinfo=timezone.utc)
    start = end - timedelta(days=days)
    world = _world_settings(settings, root, "month")
    bronze = write_bronze(spark, world, simulated(start, end - start, users), root / "month" / "staging")
    dates = [(start + timedelta(days=n)).date() for n in range(days)]
    build_silver_hours(spark, world, hours_between(start, end), per_write=24)  # a day per write
    build_fact(spark, world, dates=dates)
    build_dims(spark, world)
    build_marts(spark, world, dates=dates)
    fact_rows = spark.read.format("delta").load(FACT_STREAM_EVENTS.path(world.delta_root_uri)).count()
    return world, {"users": users, "days": days, "first_date": dates[0].isoformat(),
                   "last_date": dates[-1].isoformat(), "bronze_records": sum(bronze.values()),
                   "fact_rows": fact_rows}


def _collect_on_spark(spark: SparkSession, sql: str) -> list[Any]:
    return spark.sql(sql).collect()


def _time_runs(run: Callable[[], Any]) -> list[float]:
    run()  # warm-up: plans, caches and the first file reads
    times = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def measure_queries(spark: SparkSession, world: Settings,
                    last_date: date) -> tuple[dict[str, float], dict[str, Any]]:
    """Each benchmark query on DuckDB and on Spark SQL: the figures and the medians per query."""
    from batch_layer.analyst import open_duckdb, register_spark_views

    queries = bench_queries()
    connection = open_duckdb(world)
    views = register_spark_views(spark, world)
    duck: dict[int, list[float]] = {}
    on_spark: dict[int, list[float]] = {}
    try:
        for number, example in zip(BENCH_QUERIES, queries, strict=True):
            sql = pinned_sql(example.sql, last_date)
            duck[number] = _time_runs(partial(connection.query, sql))
            on_spark[number] = _time_runs(partial(_collect_on_spark, spark, sql))
            logger.info("query %d: duckdb %.3f s, spark %.3f s", number, median_seconds(duck[number]),
                        median_seconds(on_spark[number]))
    finally:
        connection.close()
        for name in views:
            spark.catalog.dropTempView(name)
    per_query = {str(n): {"question": q.question, "duckdb_s": median_seconds(duck[n]),
                          "spark_s": median_seconds(on_spark[n])} for n, q in zip(BENCH_QUERIES, queries, strict=True)}
    return query_figures(duck, on_spark), per_query


def gold_file_counts(world: Settings) -> dict[str, int]:
    """Data files of each gold table's current version (from its Delta log), for the tables that exist."""
    import pyarrow as pa
    from deltalake import DeltaTable

    from batch_layer.analyst import deltalake_uri, gold_tables

    counts = {}
    for spec in gold_tables():
        uri = deltalake_uri(spec.path(world.delta_root_uri))
        if DeltaTable.is_deltatable(uri):
            counts[spec.name] = pa.RecordBatchReader.from_stream(
                DeltaTable(uri).get_add_actions(flatten=False)).read_all().num_rows
    return counts


def sql_cli_seconds(world: Settings, *, runs: int = CLI_RUNS) -> list[float]:
    """Wall seconds of ``reelytics sql`` processes counting the facts of ``world`` (after one untimed run)."""
    from warehouse_models.settings import settings_environment

    env = {**os.environ, **settings_environment(world)}
    command = [sys.executable, "-m", "reelytics.cli", "sql", "SELECT count(*) FROM fact_stream_events",
               "--format", "csv"]
    seconds = []
    for run in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, cwd=REPOSITORY)
        if run:
            seconds.append(time.perf_counter() - started)
    return seconds


@benchmark("batch_layer", packages=("pyspark", "delta-spark", "duckdb", "deltalake"))
def batch_layer(ctx: BenchContext) -> Outcome:
    """Hourly rebuild of 1M events, daily rebuild, peak RSS, the ten analyst queries on DuckDB vs Spark SQL."""
    from infra.spark import build_spark_session

    started = time.monotonic()
    scale = scale_for(ctx.options, quick=ctx.quick)
    ctx.progress("scale: %s", scale)
    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    # Fixed event times (cached worlds); each world has its own Delta root.
    hour = HOUR_AT
    day = (hour - timedelta(days=1)).date()
    settings = ctx.settings.model_copy(update={"data_dir": root})
    cache = ctx.settings.cache_dir / "bench" / "batch_month"
    bronze_cache = ctx.settings.cache_dir / "bench" / "batch_bronze"
    cache.mkdir(parents=True, exist_ok=True)
    bronze_cache.mkdir(parents=True, exist_ok=True)
    try:
        with PeakRss(os.getpid()) as memory:
            spark = build_spark_session(settings, app_name="reelytics-bench-batch", ui=False)
            try:
                ctx.progress("hourly rebuild of %s events", f"{scale.hour_events:,}")
                hourly = measure_hourly(spark, settings, root, events=scale.hour_events, hour=hour,
                                        cache=bronze_cache)
                ctx.progress("daily rebuild of a day of %d users", scale.day_users)
                daily = measure_daily(spark, settings, root, users=scale.day_users, day=day, cache=bronze_cache)
                ctx.progress("a month of %d users over %d days, then the analyst queries", scale.month_users,
                             scale.month_days)
                month_settings, month = cached_month(spark, settings, cache, users=scale.month_users,
                                                     days=scale.month_days)
                month["files"] = gold_file_counts(month_settings)
                query_figs, per_query = measure_queries(spark, month_settings,
                                                        date.fromisoformat(month["last_date"]))
            finally:
                spark.stop()
            cli_runs = sql_cli_seconds(month_settings)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = {
        "hourly_rebuild_s_1m_events": hourly["seconds"]["total"],
        "daily_rebuild_s": daily["seconds"]["total"],
        "peak_rss_gb": round(memory.peak_bytes / 1024**3, 2),
        **query_figs,
        "sql_cli_cold_start_s": median_seconds(cli_runs),
        "bench_wall_s": round(time.monotonic() - started, 1),
    }
    return Outcome(
        figures=figures,
        targets={"hourly_rebuild_s_1m_events": "<= 60", "daily_rebuild_s": "<= 300", "duckdb_query_max_s": "<= 0.5",
                 "bench_wall_s": "<= 1200"},
        notes={
            "scale": asdict(scale),
            "hourly": {**hourly, "hour": hour.isoformat(), "events": hourly["bronze_records"]},
            "daily": {**daily, "date": day.isoformat()},
            "month": month,
            "queries": per_query,
            "query_timing": f"median of {TIMED_RUNS} runs after one warm-up, result collected; question 1 pinned to "
                            "the month's last date",
            "sql_cli": f"median of {CLI_RUNS} `reelytics sql` processes (after one) counting the month's facts, "
                       "start to exit",
            "memory": f"peak RSS of this process and its children (the Spark JVM), sampled every "
                      f"{SAMPLE_INTERVAL_S} s",
            "bronze": "written from the simulator's events through the bronze transform (not timed)",
            "daily_rebuild": "the day's 24 silver hours in one build (as a backfill's run of the day's hourly "
                             "partitions builds them), then its facts, the dims and its marts (the daily partition)",
            "spark": {"master": settings.spark_master, "driver_memory": settings.spark_driver_memory,
                      "jvm_options": settings.spark_jvm_options,
                      "shuffle_partitions": settings.spark_shuffle_partitions},
        },
    )

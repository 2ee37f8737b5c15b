"""The speed layer under load: end-to-end latency, the highest sustained rate, Redis memory per 100k users.

:func:`measure_speed_layer` starts the whole speed layer (every view, as `reelytics speed start` runs it) as a
background process on throw-away topics and a throw-away Redis prefix, then produces heartbeats at a fixed
rate with librdkafka. Each simulated viewer heartbeats every 10 s, so ``rate x 10`` viewers are active at once
(10,000 events/s is 100,000 active viewers).

Latency: five times a second a *probe* heartbeat goes out for a user and title of its own, stamped with the
time it was produced; a poller reads Redis every 20 ms and notes when the probe's effect is visible: the
resume position (a stateless view) and the user's 5-second engagement window (a windowed aggregation). The
figure is produce -> visible, which includes Kafka, the micro-batch trigger, Spark and the Redis write.

Sustained rate: the load steps up (500, 1,000, 2,000, 10,000 events/s, then higher while it keeps up), each step
40 s followed by up to 120 s for the last probes to show; a step is sustained when the producer kept the rate
and the probe latency did not grow during the step (its last third no worse than its first third plus a second,
p95 under 10 s). A probe not visible within 180 s counts as never seen; a percentile that falls on one is
reported as null.

Redis memory: ``used_memory`` after the 10,000 events/s step minus before the run, per 100,000 active viewers.

view_end lag (full run only, a run of its own): every view running under 1,000 events/s, probe sessions send one
heartbeat each and go silent; a probe's lag is when its view_end shows on the derived topic minus the earliest
moment the rule allows it (heartbeat time + heartbeat timeout + allowed lateness).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.harness import BenchContext, Outcome, benchmark, process_tree_sum
from warehouse_models.events import HEARTBEAT_INTERVAL_SECONDS, format_timestamp
from warehouse_models.redis_keys import bucket_start
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

PROBES_PER_SECOND = 5
POLL_INTERVAL_S = 0.02
WARMUP_TIMEOUT_S = 300.0
PROBE_GIVE_UP_S = 180.0
"""A probe not visible after this long counts as never seen (an infinite latency)."""

_TEMPLATE = (
    '{{"event_id":"{event_id}","schema_version":1,"event_type":"heartbeat","event_timestamp":"{ts}",'
    '"account_id":"{account}","user_id":"{user}","device_id":"dev-{n}","device_type":"tv","country":"DE",'
    '"session_id":"ses-{run}-{n}","content_id":"{content}","is_live":false,"position_seconds":{position},'
    '"player_state":"playing","quality_level":"1080p","bitrate_kbps":6000}}'
)


def heartbeat(run: str, n: int, ts: str, *, event_id: str, position: int, user: str | None = None,
              content: str | None = None) -> tuple[bytes, bytes]:
    """(Kafka key, value) of viewer ``n``'s playing heartbeat in a run: the load every speed benchmark sends
    (account ``n // 2``, session ``ses-<run>-<n>``, title ``vod-<n mod 5000>`` unless given)."""
    account = f"acc-{run}-{n // 2}"
    value = _TEMPLATE.format(event_id=event_id, ts=ts, account=account, user=user or f"usr-{run}-{n}", n=n, run=run,
                             content=content or f"vod-{n % 5000:05d}", position=position)
    return account.encode(), value.encode()


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100.0 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Probe:
    """One probe heartbeat: when it was produced and when each view showed it."""

    user: str
    content: str
    bucket_key: str
    sent: float
    resume_seen: float | None = None
    engagement_seen: float | None = None

    def seen_in(self, views: tuple[str, ...]) -> bool:
        """Visible in every one of ``views`` (``resume``, ``engagement``)."""
        return all(getattr(self, f"{view}_seen") is not None for view in views)


@dataclass
class Step:
    """One load step: the asked and achieved rate and the probes sent during it."""

    rate: int
    seconds: float
    sent_events: int = 0
    elapsed: float = 0.0
    probes: list[Probe] = field(default_factory=list)
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each speed query's newest progress when the step's probes were all seen (or given up on)."""
    cpu_cores: float | None = None
    """CPU the speed layer's processes used while the step produced, in cores (CPU seconds / wall seconds)."""

    @property
    def achieved_eps(self) -> float:
        return self.sent_events / self.elapsed if self.elapsed else 0.0

    def latencies(self, view: str, *, part: slice = slice(None)) -> list[float]:
        seen_attr = "resume_seen" if view == "resume" else "engagement_seen"
        out = []
        for probe in self.probes[part]:
            seen = getattr(probe, seen_attr)
            out.append((seen - probe.sent) if seen is not None else math.inf)
        return out

    def sustained(self) -> bool:
        """Kept the rate and the latency did not grow over the step."""
        if self.achieved_eps < 0.95 * self.rate:
            return False
        third = max(1, len(self.probes) // 3)
        first = self.latencies("resume", part=slice(0, third))
        last = self.latencies("resume", part=slice(-third, None))
        p95 = _percentile(self.latencies("resume"), 95)
        return p95 < 10.0 and _percentile(last, 50) <= _percentile(first, 50) + 1.0


class Load:
    """Produces heartbeats at a rate with probes among them, and polls Redis for the probes' effects.

    ``watch``: the views a probe waits for (a run with only the resume view running watches only that).
    """

    def __init__(self, settings: Settings, *, watch: tuple[str, ...] = ("resume", "engagement")) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.watch = watch
        self.topic = settings.topics.playback.name
        self.producer = Producer({"bootstrap.servers": ",".join(settings.kafka_bootstrap_list),
                                  "linger.ms": 5, "compression.type": "lz4", "acks": "1",
                                  "queue.buffering.max.messages": 1_000_000})
        self.client = settings.redis_client()
        self.keys = settings.keys
        self.run = uuid.uuid4().hex[:6]
        self._pending: list[Probe] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="probe-poller", daemon=True)
        self._poller.start()
        self._probe_seq = 0
        self._position = 0

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=5)
        self.producer.flush(30)

    def _event(self, n: int, ts: str, *, user: str | None = None, content: str | None = None) -> tuple[bytes, bytes]:
        self._position += 1
        return heartbeat(self.run, n, ts, event_id=f"{self.run}-{uuid.uuid4().hex[:12]}",
                         position=self._position % 7200, user=user, content=content)

    def probe(self) -> Probe:
        """Produce one probe heartbeat and start watching for it."""
        self._probe_seq += 1
        now = datetime.now(timezone.utc)
        user, content = f"probe-{self.run}-{self._probe_seq}", f"vod-probe-{self._probe_seq}"
        window = int(now.timestamp()) // 5 * 5
        bucket_key = self.keys.user_engagement_bucket(user, bucket_start(float(window)))
        key, value = self._event(10_000_000 + self._probe_seq, format_timestamp(now), user=user, content=content)
        probe = Probe(user, content, bucket_key, time.monotonic())
        self.producer.produce(self.topic, value, key)
        self.producer.poll(0)
        with self._lock:
            self._pending.append(probe)
        return probe

    def _poll(self) -> None:
        while not self._stop.is_set():
            cutoff = time.monotonic() - PROBE_GIVE_UP_S
            with self._lock:
                pending = [p for p in self._pending if not p.seen_in(self.watch) and p.sent > cutoff]
                self._pending = pending
            if pending:
                pipe = self.client.pipeline(transaction=False)
                for probe in pending:
                    pipe.hexists(self.keys.resume_position(probe.user), probe.content)
                    pipe.exists(probe.bucket_key)
                try:
                    answers = pipe.execute()
                except Exception:  # a busy Redis only delays the reading
                    logger.debug("probe poll failed", exc_info=True)
                    answers = []
                now = time.monotonic()
                for i, probe in enumerate(pending[: len(answers) // 2]):
                    if probe.resume_seen is None and answers[2 * i]:
                        probe.resume_seen = now
                    if probe.engagement_seen is None and answers[2 * i + 1]:
                        probe.engagement_seen = now
            time.sleep(POLL_INTERVAL_S)

    def run_step(self, rate: int, seconds: float, *, settle_s: float = 120.0, speed_pid: int | None = None) -> Step:
        """Produce ``rate`` events/s for ``seconds`` (viewers = rate x 10), probing; wait ``settle_s`` for the
        last probes. With ``speed_pid``, also the CPU the speed layer used while the step produced."""
        step = Step(rate, seconds)
        cpu_before = tree_cpu_seconds(speed_pid) if speed_pid else None
        viewers = max(1, rate * HEARTBEAT_INTERVAL_SECONDS)
        tick = 0.01
        began = time.monotonic()
        next_probe = began
        n = 0
        while (now := time.monotonic()) - began < seconds:
            due = int((now - began) * rate) - step.sent_events
            if due > 0:
                ts = format_timestamp(datetime.now(timezone.utc))
                for _ in range(due):
                    key, value = self._event(n % viewers, ts)
                    n += 1
                    while True:
                        try:
                            self.producer.produce(self.topic, value, key)
                            break
                        except BufferError:
                            self.producer.poll(0.01)
                step.sent_events += due
            self.producer.poll(0)
            if now >= next_probe:
                step.probes.append(self.probe())
                next_probe += 1.0 / PROBES_PER_SECOND
            time.sleep(tick)
        step.elapsed = time.monotonic() - began
        if speed_pid and cpu_before is not None:
            step.cpu_cores = round((tree_cpu_seconds(speed_pid) - cpu_before) / step.elapsed, 2)
        self.producer.flush(30)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and not all(p.seen_in(self.watch) for p in step.probes):
            time.sleep(0.2)
        step.queries = self.query_progress()
        return step

    def query_progress(self) -> dict[str, dict[str, Any]]:
        """Batch duration, rows and Kafka lag of each speed query's newest micro-batch (what `reelytics status`
        shows), so a step's latency can be read against what the queries were doing."""
        from speed_layer.progress import read_progress

        wanted = ("batch_id", "num_input_rows", "batch_duration_ms", "processed_rows_per_second", "kafka_lag",
                  "view_ms", "phase_ms")
        return {row.get("name", "?"): {k: row[k] for k in wanted if k in row}
                for row in read_progress(self.client, self.settings.keys)}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (the speed layer's Python driver, its Spark
    JVM and the JVM's Python workers), with their reaped children's."""

    def cpu(proc: Any) -> float:
        times = proc.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    return process_tree_sum(pid, cpu)


def _warm_up(load: Load) -> float:
    """Send probes until one is visible in the watched views (the queries' first batches compile their plans)."""
    began = time.monotonic()
    probes: list[Probe] = []
    while time.monotonic() - began < WARMUP_TIMEOUT_S:
        probes.append(load.probe())
        load.producer.flush(10)
        time.sleep(2.0)
        if any(p.seen_in(load.watch) for p in probes):
            return time.monotonic() - began
    raise RuntimeError(f"the speed layer showed no probe within {WARMUP_TIMEOUT_S:.0f} s; see its log")


def _seconds(value: float) -> float | None:
    """A latency for the JSON result: None when the probes were not visible within PROBE_GIVE_UP_S."""
    return None if math.isinf(value) or math.isnan(value) else round(value, 3)


def _step_figures(step: Step) -> dict[str, Any]:
    resume, engagement = step.latencies("resume"), step.latencies("engagement")
    return {
        "rate": step.rate,
        "achieved_eps": round(step.achieved_eps),
        "probes": len(step.probes),
        "resume_p50_s": _seconds(_percentile(resume, 50)),
        "resume_p95_s": _seconds(_percentile(resume, 95)),
        "resume_p99_s": _seconds(_percentile(resume, 99)),
        "engagement_p50_s": _seconds(_percentile(engagement, 50)),
        "engagement_p95_s": _seconds(_percentile(engagement, 95)),
        "probes_seen": sum(1 for x in resume if not math.isinf(x)),
        "sustained": step.sustained(),
        "speed_cpu_cores": step.cpu_cores,
        "queries": step.queries,
    }


def throwaway_run(settings: Settings, name: str) -> tuple[Settings, Path]:
    """Settings of one benchmark run: its own data dir (a new temporary one, returned), topics and Redis prefix."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    tag = uuid.uuid4().hex[:8]
    run = settings.model_copy(update={
        "data_dir": workdir,
        "kafka_topic_prefix": f"bench-{name}-{tag}",
        "redis_key_prefix": f"bench-{name}-{tag}",
        "checkpoint_root": str(workdir / "checkpoints"),
        "log_level": "INFO",
    })
    return run, workdir


def measure_speed_layer(settings: Settings, *, quick: bool = False,
                        ramp: tuple[int, ...] = (15_000, 20_000, 30_000),
                        views: list[str] | None = None,
                        rates: tuple[int, ...] = (500, 1_000, 2_000, 10_000)) -> dict[str, Any]:
    """Run the load steps against a background speed layer; return figures and per-step details."""
    from infra.kafka import ensure_topics
    from speed_layer.service import speed_log, speed_pid, start_speed, stop_speed

    run, workdir = throwaway_run(settings, "speed")
    ensure_topics(run)
    client = run.redis_client()
    memory_before = int(client.info("memory")["used_memory"])
    logger.info("starting the speed layer: %s", start_speed(run, names=views))
    pid = speed_pid(run)
    load = Load(run, watch=("resume",) if views == ["resume"] else ("resume", "engagement"))
    steps: list[Step] = []
    figures: dict[str, Any] = {}
    try:
        figures["warmup_s"] = round(_warm_up(load), 1)
        logger.info("speed layer warm after %.0f s", figures["warmup_s"])
        seconds = 20.0 if quick else 40.0
        for rate in rates:
            steps.append(load.run_step(rate, seconds, speed_pid=pid))
            logger.info("step %s", _step_figures(steps[-1]))
            if rate == 10_000:
                figures["redis_bytes_after_10k"] = int(client.info("memory")["used_memory"]) - memory_before
        if not steps[-1].sustained():
            ramp = ()
        for rate in ([] if quick else ramp):
            steps.append(load.run_step(rate, seconds, speed_pid=pid))
            logger.info("step %s", _step_figures(steps[-1]))
            if not steps[-1].sustained():
                break
    finally:
        load.close()
        stop_speed(run)
        kept = Path(tempfile.gettempdir()) / "reelytics-bench-speed-layer.log"
        if speed_log(run).exists():
            shutil.copyfile(speed_log(run), kept)
            logger.info("speed layer log kept at %s", kept)
        _cleanup(run, client)
        shutil.rmtree(workdir, ignore_errors=True)
    by_rate = {s.rate: s for s in steps}
    at_10k = by_rate[10_000]
    if views == ["resume"]:
        return {"figures": {**figures, "floor_e2e_p95_s_at_10k": _seconds(_percentile(at_10k.latencies("resume"), 95))},
                "steps": [_step_figures(s) for s in steps]}
    at_2k = by_rate[2_000]
    sustained = [s.achieved_eps for s in steps if s.sustained()]
    viewers_10k = 10_000 * HEARTBEAT_INTERVAL_SECONDS
    figures.update({
        "e2e_p50_s_at_10k": _seconds(_percentile(at_10k.latencies("resume"), 50)),
        "e2e_p95_s_at_10k": _seconds(_percentile(at_10k.latencies("resume"), 95)),
        "e2e_p99_s_at_10k": _seconds(_percentile(at_10k.latencies("resume"), 99)),
        "e2e_p95_s_at_2k": _seconds(_percentile(at_2k.latencies("resume"), 95)),
        "e2e_windowed_p95_s_at_10k": _seconds(_percentile(at_10k.latencies("engagement"), 95)),
        "sustained_max_eps": round(max(sustained)) if sustained else 0,
        "speed_cpu_cores_at_10k": at_10k.cpu_cores,
        "redis_bytes_per_100k_users": round(figures.pop("redis_bytes_after_10k") * 100_000 / viewers_10k),
    })
    return {"figures": figures, "steps": [_step_figures(s) for s in steps]}


VIEW_END_LAG_RATE = 1_000
"""Background load of the view_end lag run (events/s): it keeps the watermark moving past the silent probes."""
VIEW_END_LAG_PROBES = 20


class ViewEndWatch:
    """Notes when each view_end whose event id starts with ``prefix`` first shows on the derived topic."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        from confluent_kafka import Consumer

        self.prefix = prefix
        self.seen: dict[str, float] = {}
        self._consumer = Consumer({"bootstrap.servers": ",".join(settings.kafka_bootstrap_list),
                                   "group.id": f"bench-view-end-{uuid.uuid4().hex[:8]}",
                                   "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self._consumer.subscribe([settings.topics.derived.name])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-end-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import json

        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None or message.error() or message.value() is None:
                continue
            event_id = str(json.loads(message.value() or b"{}").get("event_id", ""))
            if event_id.startswith(self.prefix) and event_id not in self.seen:
                self.seen[event_id] = time.time()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def measure_view_end_lag(settings: Settings) -> dict[str, Any]:
    """Every view running under a steady background load; probe sessions send one heartbeat each and go silent.

    A probe's lag is when its view_end first shows on the derived topic minus the earliest moment the rule
    allows it: its heartbeat's event time plus the heartbeat timeout plus the allowed lateness the watermark
    waits for. The load runs until every probe is due, plus two triggers and half a minute.
    """
    from infra.kafka import ensure_topics
    from speed_layer.service import start_speed, stop_speed

    run, workdir = throwaway_run(settings, "view-end")
    ensure_topics(run)
    client = run.redis_client()
    logger.info("view_end lag: starting the speed layer: %s", start_speed(run))
    load = Load(run)
    tag = f"velag{load.run}"
    watch = ViewEndWatch(run, f"ve-ses-{tag}-")
    wait_s = run.speed_heartbeat_timeout_seconds + run.speed_allowed_lateness_seconds
    due: dict[str, float] = {}
    try:
        _warm_up(load)
        for i in range(VIEW_END_LAG_PROBES):
            now = datetime.now(timezone.utc)
            key, value = heartbeat(tag, i, format_timestamp(now), event_id=f"{tag}-{i}", position=i)
            load.producer.produce(load.topic, value, key)
            due[f"ve-ses-{tag}-{i}"] = now.timestamp() + wait_s
            time.sleep(0.5)
        load.producer.flush(30)
        seconds = wait_s + 2 * run.speed_trigger_seconds + 30
        logger.info("view_end lag: %d probe sessions went silent; load at %d events/s for %.0f s",
                    len(due), VIEW_END_LAG_RATE, seconds)
        load.run_step(VIEW_END_LAG_RATE, seconds, settle_s=5.0)
    finally:
        watch.close()
        load.close()
        stop_speed(run)
        _cleanup(run, client)
        shutil.rmtree(workdir, ignore_errors=True)
    lags = [watch.seen[event_id] - at if event_id in watch.seen else math.inf for event_id, at in due.items()]
    return {"view_end_lag_p50_s": _seconds(_percentile(lags, 50)),
            "view_end_lag_p95_s": _seconds(_percentile(lags, 95)),
            "view_end_probes": len(due), "view_end_probes_seen": sum(1 for e in due if e in watch.seen),
            "view_end_lag_rate": VIEW_END_LAG_RATE}


def delete_keys(settings: Settings, client: Any) -> None:
    """Delete the Redis keys of the settings' prefix (leftovers only cost memory; the figures are measured)."""
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    except Exception as exc:
        logger.warning("could not delete the benchmark's Redis keys: %s", exc)


def _cleanup(settings: Settings, client: Any) -> None:
    """Delete the run's Redis keys and topics (leftovers only cost memory and disk; the figures are measured)."""
    delete_keys(settings, client)
    from bench.ingestion_bronze import _delete_topics

    _delete_topics(settings)


@benchmark("speed_layer", packages=("pyspark", "confluent-kafka", "redis"))
def speed_layer(ctx: BenchContext) -> Outcome:
    """End-to-end latency at 2k and 10k events/s, the highest sustained rate, Redis bytes per 100k viewers."""
    from speed_layer.job import speed_master

    ctx.progress("speed layer under load (all views running)")
    result = measure_speed_layer(ctx.settings, quick=ctx.quick)
    ctx.progress("the floor: the resume view alone, at 10,000 events/s")
    floor = measure_speed_layer(ctx.settings, quick=True, views=["resume"], rates=(10_000,))
    lag: dict[str, Any] = {}
    if not ctx.quick:
        ctx.progress("view_end lag: silent sessions under %d events/s (every view running)", VIEW_END_LAG_RATE)
        lag = measure_view_end_lag(ctx.settings)
    return Outcome(
        figures={**result["figures"], "floor_e2e_p95_s_at_10k": floor["figures"]["floor_e2e_p95_s_at_10k"],
                 **{k: v for k, v in lag.items() if k.startswith("view_end_lag_p")}},
        targets={"e2e_p95_s_at_2k": "<= 1.5", "e2e_p95_s_at_10k": "<= 2.0", "e2e_windowed_p95_s_at_10k": "<= 3.0",
                 "sustained_max_eps": ">= 10000", "view_end_lag_p95_s": "<= 5"},
        notes={
            "steps": result["steps"],
            "floor_steps": floor["steps"],
            "view_end_lag": lag or "not measured in a quick run",
            "latency": "produce -> visible in Redis; e2e_* is the resume view (stateless), "
                       "e2e_windowed_* the 5-second engagement window",
            "machine": f"Kafka, Redis, the speed layer (every view, Spark {speed_master(ctx.settings)}) and the load "
                       f"generator share {os.cpu_count()} cores",
        },
    )

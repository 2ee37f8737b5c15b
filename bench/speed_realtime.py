"""The resume view in micro-batch and in Spark's real-time mode, side by side under the same load.

One after the other in the same run, each on its own throw-away topics and Redis prefix, the speed layer runs
as a background process with only the resume view: (a) the shared micro-batch query
(`python -m speed_layer --views resume`, a micro-batch every ``speed_trigger_seconds`` on the settings' Spark
master) and (b) the real-time query (`python -m speed_layer --realtime-resume`, ``local[<partitions>]``: one
long-running task per Kafka partition). The load generator and probes are those of :mod:`bench.speed`
(heartbeats at a fixed rate, five probe heartbeats a second, Redis polled every 20 ms): the figure is
produce -> visible in Redis. A step at 10,000 events/s runs only when the 2,000 events/s step kept up.

CPU: user + system seconds of the speed process and every process under it (the JVM and its Python workers;
finished children count through their parents' children times), over each step's producing period, divided by
its length: the cores the mode used. Kafka, Redis and the load generator are not in it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from typing import Any, Literal

from bench.harness import BenchContext, Outcome, benchmark
from bench.speed import Load, Step, _cleanup, _percentile, _seconds, _warm_up, throwaway_run, tree_cpu_seconds
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

Mode = Literal["microbatch", "realtime"]

RATES: tuple[int, ...] = (2_000, 10_000)


def _step_figures(step: Step, cpu_cores: float, load_avg: float) -> dict[str, Any]:
    resume = step.latencies("resume")
    return {
        "rate": step.rate,
        "achieved_eps": round(step.achieved_eps),
        "probes": len(step.probes),
        "probes_seen": sum(1 for x in resume if x != float("inf")),
        "resume_p50_s": _seconds(_percentile(resume, 50)),
        "resume_p95_s": _seconds(_percentile(resume, 95)),
        "resume_p99_s": _seconds(_percentile(resume, 99)),
        "sustained": step.sustained(),
        "cpu_cores": round(cpu_cores, 2),
        "machine_load_avg_1m": round(load_avg, 1),
    }


def _measured_step(load: Load, pid: int, rate: int, seconds: float, settle_s: float) -> dict[str, Any]:
    """One load step, with the speed process tree's CPU and the machine's load average over its producing period."""
    before = tree_cpu_seconds(pid)
    after: list[tuple[float, float]] = []
    # Sampled when producing ends, not after the step's wait for its last probes.
    timer = threading.Timer(seconds, lambda: after.append((tree_cpu_seconds(pid), os.getloadavg()[0])))
    timer.start()
    step = load.run_step(rate, seconds, settle_s=settle_s)
    timer.join()
    cpu_after, load_avg = after[0]
    figures = _step_figures(step, (cpu_after - before) / seconds, load_avg)
    logger.info("step %s", figures)
    return figures


def measure_mode(settings: Settings, mode: Mode, *, rates: tuple[int, ...], seconds: float,
                 settle_s: float) -> dict[str, Any]:
    """Run the resume view in one mode on its own topics and prefix; the figures of each step it ran."""
    from infra.kafka import ensure_topics
    from speed_layer.job import speed_master
    from speed_layer.realtime import local_master
    from speed_layer.service import speed_log, speed_pid, start_speed, stop_speed

    run, workdir = throwaway_run(settings, mode)
    # The master the speed process really runs on (`python -m speed_layer` raises a local one to its task slots).
    run = run.model_copy(update={"spark_master": local_master(run) if mode == "realtime" else speed_master(run)})
    ensure_topics(run)
    client = run.redis_client()
    logger.info("%s: starting the speed layer on %s: %s", mode, run.spark_master,
                start_speed(run, names=["resume"], realtime_resume=mode == "realtime"))
    load = Load(run, watch=("resume",))
    result: dict[str, Any] = {"spark_master": run.spark_master, "steps": []}
    try:
        pid = speed_pid(run)
        if pid is None:
            raise RuntimeError(f"the {mode} speed process did not start; see {speed_log(run)}")
        result["warmup_s"] = round(_warm_up(load), 1)
        logger.info("%s: warm after %.0f s", mode, result["warmup_s"])
        for rate in rates:
            result["steps"].append(_measured_step(load, pid, rate, seconds, settle_s))
            if not result["steps"][-1]["sustained"]:
                logger.info("%s: %d events/s not sustained; no higher rate", mode, rate)
                break
    finally:
        load.close()
        stop_speed(run)
        logger.info("%s: speed layer log %s", mode, speed_log(run))
        _cleanup(run, client)
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def figures_of(modes: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per-mode step results -> the flat figures: latency percentiles and CPU cores per mode and rate, and the
    real-time over micro-batch p95 ratio (only what was measured: a step not run or a probe never seen gives no
    figure)."""
    figures: dict[str, float] = {}
    for mode, result in modes.items():
        for step in result["steps"]:
            at = f"_at_{step['rate'] // 1000}k"
            for pct in ("p50", "p95", "p99"):
                if step[f"resume_{pct}_s"] is not None:
                    figures[f"{mode}_resume_{pct}_s{at}"] = step[f"resume_{pct}_s"]
            # The 2k step is every mode's first: its CPU is the plain figure.
            figures[f"{mode}_cpu_cores" + ("" if at == "_at_2k" else at)] = step["cpu_cores"]
    for at in ("_at_2k", "_at_10k"):
        micro, real = figures.get(f"microbatch_resume_p95_s{at}"), figures.get(f"realtime_resume_p95_s{at}")
        if micro and real is not None:
            figures["realtime_over_microbatch_p95_ratio" + ("" if at == "_at_2k" else at)] = round(real / micro, 3)
    return figures


def compare(settings: Settings, *, quick: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """Both modes under the same load, one after the other: (figures, per-mode details)."""
    rates = RATES[:1] if quick else RATES
    seconds, settle_s = (15.0, 60.0) if quick else (40.0, 120.0)
    modes: dict[str, Any] = {mode: measure_mode(settings, mode, rates=rates, seconds=seconds, settle_s=settle_s)
                             for mode in ("microbatch", "realtime")}
    return figures_of(modes), modes


@benchmark("speed_realtime", packages=("pyspark", "confluent-kafka", "redis"))
def speed_realtime(ctx: BenchContext) -> Outcome:
    """Resume view latency and CPU: the micro-batch query vs Spark's real-time mode, at 2k (and 10k) events/s."""
    from speed_layer.realtime import task_slots_needed

    ctx.progress("resume view: micro-batch, then real-time mode, under the same load")
    figures, modes = compare(ctx.settings, quick=ctx.quick)
    realtime_master = modes["realtime"]["spark_master"]
    return Outcome(
        figures=figures,
        notes={
            "modes": modes,
            "latency": "produce -> visible in Redis of a probe heartbeat's resume position",
            "cpu": "*_cpu_cores: CPU seconds per second of the speed process tree (driver JVM and Python workers) "
                   "while the step produced (2,000 events/s; *_at_10k at 10,000)",
            "spark_masters": f"micro-batch on {modes['microbatch']['spark_master']} (trigger every "
                             f"{ctx.settings.speed_trigger_seconds:g} s); real-time on {realtime_master}: one "
                             f"long-running task per Kafka partition, {task_slots_needed(ctx.settings)} task "
                             f"threads on {os.cpu_count()} cores (real-time batch duration "
                             f"{ctx.settings.speed_realtime_checkpoint_seconds:g} s)",
            "writer": "real-time mode feeds a Python ForeachWriter through pickled chunks of 1, 2, 4, ... rows "
                      "(each sent when full) or at the end of a batch, so rows can wait up to a batch duration",
            "machine": "Kafka, Redis, the speed process and the load generator share the machine's cores with "
                       "other work running at the same time (each step's machine_load_avg_1m); one run, not a "
                       "controlled measurement",
            "steps_skipped": "a 10,000 events/s step runs only after a sustained 2,000 events/s step",
        },
    )

"""`python -m speed_layer [--views a,b] [--available-now | --realtime-resume]`: the speed layer as a process.

The entry point for running the job under a supervisor, ``spark-submit`` or `reelytics speed start`; settings
come from the ``REELYTICS_*`` environment like everywhere else. ``--realtime-resume`` runs only the resume view,
in Spark's real-time mode (:mod:`speed_layer.realtime`; the Spark master needs a task slot per Kafka partition).

Running (not ``--available-now``), the session-state views (``speed_background_views``: view_end) go to a
child process of their own, ``python -m speed_layer --views view_end``, which lowers its own CPU priority
(``speed_background_niceness``): on a machine with few cores their micro-batches (each query reads, parses and
de-duplicates every event again) would otherwise take a large share of every core from the shared query whose
views apps poll. This process watches the child: if
either stops, both do (the child gets SIGTERM when the parent dies on Linux), so a supervisor restarts the whole
layer (the queries continue from their checkpoints).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from speed_layer.job import VIEW_MODULES, run_speed, run_speed_available_now, speed_master, views
from warehouse_models.settings import Settings, load_settings

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
"""prctl option: the signal a process gets when its parent dies (Linux)."""


def background_views(names: Sequence[str], settings: Settings) -> tuple[list[str], list[str]]:
    """The views this process runs and those its low-priority child runs: the session-state views named in
    ``speed_background_views`` (none when all are of one kind, or when ``speed_background_niceness`` is 0)."""
    wanted = {name.strip() for name in settings.speed_background_views.split(",") if name.strip()}
    behind = [view.name for view in views(names) if view.stateful and view.name in wanted]
    foreground = [name for name in names if name not in behind]
    if not behind or not foreground or settings.speed_background_niceness == 0:
        return list(names), []
    return foreground, behind


def start_background(names: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``python -m speed_layer --views <names>`` as this process's low-priority child (same environment and
    output; the child lowers its own priority, :func:`become_background`)."""
    child = subprocess.Popen([sys.executable, "-m", "speed_layer", "--views", ",".join(names),  # noqa: S603
                              "--background-of", str(os.getpid())])
    logger.info("session-state views %s run in pid %d", ",".join(names), child.pid)
    return child


def become_background(settings: Settings, parent: int) -> None:
    """In the child: lower this process's CPU priority by ``speed_background_niceness`` and (on Linux) ask for a
    SIGTERM when the parent dies; exit if it died already."""
    os.nice(settings.speed_background_niceness)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        logger.error("the speed layer process %d that started these views is gone; stopping", parent)
        sys.exit(1)
    logger.info("session-state views at niceness +%d, child of pid %d", settings.speed_background_niceness, parent)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the views, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m speed_layer", description=__doc__)
    parser.add_argument("--views", default=",".join(VIEW_MODULES), help="comma-separated views to run (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--available-now", action="store_true", help="process what the topics hold now, then stop")
    mode.add_argument("--realtime-resume", action="store_true",
                      help="run only the resume view, in Spark's real-time mode (ignores --views)")
    parser.add_argument("--background-of", type=int, help=argparse.SUPPRESS)  # set on the session-state child
    args = parser.parse_args(argv)

    from infra.spark import build_spark_session

    settings = load_settings()
    settings = settings.model_copy(update={"spark_master": speed_master(settings)})
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    names = [n.strip() for n in args.views.split(",") if n.strip()]
    if args.background_of is not None:
        become_background(settings, args.background_of)
    child = None
    spark = None
    try:
        if not (args.available_now or args.realtime_resume):
            names, behind = background_views(names, settings)
            child = start_background(behind) if behind else None
        spark = build_spark_session(settings, app_name="reelytics-speed", ui=False)
        if args.realtime_resume:
            from speed_layer.realtime import run_realtime_resume

            run_realtime_resume(spark, settings)
        elif args.available_now:
            run_speed_available_now(spark, settings, names=names)
        else:
            def child_alive() -> bool:
                return child is None or child.poll() is None

            if args.background_of is None:
                from speed_layer.monitoring import serve_metrics

                serve_metrics(settings)

            run_speed(spark, settings, names=names, alive=child_alive)
    except KeyboardInterrupt:
        logger.info("interrupted; the queries stop and continue from their checkpoints next time")
    finally:
        if child is not None:
            _stop(child)
        if spark is not None:
            spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

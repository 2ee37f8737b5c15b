"""`python -m speed_layer [--views a,b] [--available-now | --realtime-resume]`: the speed layer as a process.

The entry point for running the job under a supervisor, ``spark-submit`` or `reelytics speed start`; settings
come from the ``REELYTICS_*`` environment like everywhere else. ``--realtime-resume`` runs only the resume view,
in Spark's real-time mode (:mod:`speed_layer.realtime`; the Spark master needs a task slot per Kafka partition).
"""

from __future__ import annotations

import argparse
import logging
import sys

from speed_layer.job import VIEW_MODULES, run_speed, run_speed_available_now, speed_master, speed_spark_conf
from warehouse_models.settings import load_settings

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the views, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m speed_layer", description=__doc__)
    parser.add_argument("--views", default=",".join(VIEW_MODULES), help="comma-separated views to run (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--available-now", action="store_true", help="process what the topics hold now, then stop")
    mode.add_argument("--realtime-resume", action="store_true",
                      help="run only the resume view, in Spark's real-time mode (ignores --views)")
    args = parser.parse_args(argv)

    from infra.spark import build_spark_session

    settings = load_settings()
    settings = settings.model_copy(update={"spark_master": speed_master(settings)})
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    names = [n.strip() for n in args.views.split(",") if n.strip()]
    spark = build_spark_session(settings, app_name="reelytics-speed", ui=False, extra_conf=speed_spark_conf(settings))
    try:
        if args.realtime_resume:
            from speed_layer.realtime import run_realtime_resume

            run_realtime_resume(spark, settings)
        elif args.available_now:
            run_speed_available_now(spark, settings, names=names)
        else:
            run_speed(spark, settings, names=names)
    except KeyboardInterrupt:
        logger.info("interrupted; the queries stop and continue from their checkpoints next time")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

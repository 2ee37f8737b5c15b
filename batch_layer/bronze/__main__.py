"""`python -m batch_layer.bronze [--mode available-now|continuous]`: the bronze job as a process.

The entry point for running the job under a supervisor or ``spark-submit``; settings come from the
``REELYTICS_*`` environment like everywhere else.
"""

from __future__ import annotations

import argparse
import logging
import sys

from batch_layer.bronze.job import ProgressLog, run_bronze_available_now, run_bronze_continuous
from warehouse_models.settings import load_settings

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the job, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m batch_layer.bronze", description=__doc__)
    parser.add_argument("--mode", choices=("available-now", "continuous"), default="available-now")
    parser.add_argument("--processing-time", default="10 seconds", help="micro-batch interval of continuous mode")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    args = parser.parse_args(argv)

    from infra.spark import build_spark_session

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    spark = build_spark_session(settings, app_name="reelytics-bronze", ui=False)
    try:
        if args.mode == "continuous":
            run_bronze_continuous(settings, spark, processing_time=args.processing_time,
                                  max_offsets_per_trigger=args.max_offsets_per_trigger, on_progress=ProgressLog())
        else:
            added = run_bronze_available_now(settings, spark, max_offsets_per_trigger=args.max_offsets_per_trigger,
                                             on_progress=ProgressLog())
            logger.info("rows added: %s", added)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

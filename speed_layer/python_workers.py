"""The speed layer's Spark Python workers, at a lower CPU priority than the rest of the job.

Spark starts its Python workers from a daemon module (``spark.python.daemon.module``); the speed layer's Spark
session names this one (:func:`speed_layer.job.speed_spark_conf`). It lowers the daemon's own priority by
``speed_worker_niceness`` (``REELYTICS_SPEED_WORKER_NICENESS``), then runs PySpark's daemon, so every worker it
forks inherits the priority. In the speed layer only the session-state queries (QoE and view_end) run Python on
the executors, in bursts on the background trigger; the shared query that apps wait on runs in the JVM and on
the driver. On a busy machine the bursts then take the cores the shared query leaves, instead of halving them.
"""

from __future__ import annotations

import os

NICENESS_ENV = "REELYTICS_SPEED_WORKER_NICENESS"
"""The setting's environment variable, which Spark passes to the executors (``spark.executorEnv``)."""


def main() -> None:
    from pyspark import daemon

    niceness = int(os.environ.get(NICENESS_ENV, "0") or 0)
    if niceness > 0:
        os.nice(niceness)
    daemon.manager()


if __name__ == "__main__":
    main()

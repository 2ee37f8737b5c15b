"""The QoE view of the speed layer: the stateful query's rows (whole sums of every bucket a micro-batch changed,
:func:`warehouse_models.metrics.qoe.qoe_rows`) set into Redis. The definitions, the per-slice step and the reader
are in :mod:`warehouse_models.metrics.qoe`, shared with the batch layer's QoE mart and reconciliation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from speed_layer.query import SinkContext, ViewQuery
from warehouse_models.events import TopicKind
from warehouse_models.metrics.qoe import QOE_FIELDS, SLICE_COLUMNS, qoe_rows
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def write_qoe(batch: DataFrame, ctx: SinkContext) -> None:
    """Set each changed bucket's whole sums (``HSET``) with the bucket TTL, in one pipeline."""
    from pyspark.sql import functions as F

    rows = batch.select(*SLICE_COLUMNS, F.unix_seconds("window_start").alias("bucket"), *QOE_FIELDS).collect()
    if not rows:
        return
    pipe = ctx.client.pipeline(transaction=False)
    for row in rows:
        key = ctx.keys.qoe_bucket(row["content_id"], row["device_type"], row["country"], int(row["bucket"]))
        pipe.hset(key, mapping={name: int(row[name]) for name in QOE_FIELDS})
        pipe.expire(key, SPEED_BUCKET_TTL_SECONDS)
    pipe.execute()
    ctx.stats["qoe_buckets"] = len(rows)


QUERY = ViewQuery(
    name="qoe",
    description="QoE sums per title, device type and country per event-time minute (startup, stalls, bitrate, "
                "shifts, start failures, exits before start, failures after start).",
    topics=(TopicKind.PLAYBACK,),
    transform=qoe_rows,
    write=write_qoe,
    output_mode="update",
    stateful=True,
    python_state=True,
)


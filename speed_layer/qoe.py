"""The QoE view of the speed layer: per title, device type and country per event-time minute, additive sums.

Two parts, both without Python per session or per event (the definitions and the reader are in
:mod:`warehouse_models.metrics.qoe`, shared with the batch layer's QoE mart and reconciliation):

* what each playback event adds (plays, startups, playing time, bitrate, stalls, shifts:
  :data:`~warehouse_models.metrics.qoe.EVENT_CONTRIBUTIONS`) is a view of the shared query: each micro-batch adds
  its counts of the buckets it touched, with the batch id (one script call), so a replay adds nothing;
* the session outcomes (start failures, exits before start, failures after start) are judged once per session by
  the view_end query, whose state is in the JVM: its writer adds each micro-batch's judged sessions to the same
  buckets (:func:`write_outcomes`, under the view_end query's own fence), in the bucket of the session's end or,
  for a timeout, of its last event.

So the outcomes appear when view_end ends the session, and only where view_end runs: select ``view_end`` with
``qoe`` (every view runs by default).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from speed_layer.query import SinkContext, shared_view, write_increments
from warehouse_models.events import TopicKind
from warehouse_models.metrics.qoe import EVENT_CONTRIBUTIONS, EVENT_FIELDS, outcome_counts
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS

logger = logging.getLogger(__name__)


def _add_to_buckets(ctx: SinkContext, sums: Mapping[tuple[str, str, str, int], Mapping[str, int]], stat: str) -> None:
    """Add ``(content, device type, country, bucket start) -> field -> amount`` to the QoE buckets, once per
    micro-batch of the calling query (its batch-id fence)."""
    ctx.stats[stat] = len(sums)
    if not sums:
        return
    increments = {ctx.keys.qoe_bucket(content, device, country, bucket): values
                  for (content, device, country, bucket), values in sums.items()}
    if not write_increments(ctx, increments, ttl_seconds=SPEED_BUCKET_TTL_SECONDS):
        logger.info("%s batch %d: its QoE sums were added before", ctx.query_name, ctx.batch_id)


def apply_qoe(rows: list[dict[str, Any]], ctx: SinkContext) -> None:
    """Add a micro-batch's event sums (reduced per slice and minute) to their buckets, once (fenced)."""
    _add_to_buckets(ctx, {(row["content_id"], row["device_type"], row["country"], int(row["start"])):
                          {name: int(row[name]) for name in EVENT_FIELDS} for row in rows}, "qoe_buckets")


def write_outcomes(sessions: Iterable[Mapping[str, Any]], ctx: SinkContext) -> None:
    """Add judged sessions (view_end rows with their slice, ``outcome_ms`` and outcome flags) to the QoE buckets,
    once per micro-batch of the calling query (its batch-id fence)."""
    _add_to_buckets(ctx, outcome_counts(sessions), "qoe_outcome_buckets")


QUERY = shared_view(
    name="qoe",
    description="QoE sums per title, device type and country per event-time minute (startup, stalls, bitrate, "
                "shifts; start failures, exits before start and failures after start come from view_end).",
    topics=(TopicKind.PLAYBACK,),
    contributions=EVENT_CONTRIBUTIONS,
    apply=apply_qoe,
    late_cut=True,
)

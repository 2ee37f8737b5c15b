"""The fact table: one row per viewer event from silver, with the measures analysts add up.

Silver has already deduplicated the events and stitched every session's account, user, title and device onto
its events; this step only derives the measures: ``watch_seconds`` is the heartbeat interval for a heartbeat
whose ``player_state`` is ``playing`` and 0 for every other event (the speed layer's and the simulator's
definition, so sums agree with both), ``is_buffering`` marks stalls, and a ``view_end``'s own whole-session
watch time moves to ``session_watch_seconds`` so that summing ``watch_seconds`` never counts a session twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from batch_layer.bronze.transform import conform
from warehouse_models.events import HEARTBEAT_INTERVAL_SECONDS, EventType
from warehouse_models.tables import FACT_STREAM_EVENTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def fact_stream_events(silver: DataFrame) -> DataFrame:
    """The fact rows of silver events (silver's columns in, the fact table's columns out, one row per event)."""
    from pyspark.sql import functions as F

    event_type, state = F.col("event_type"), F.col("player_state")
    heartbeat = event_type == EventType.HEARTBEAT.value
    view_end = event_type == EventType.VIEW_END.value
    derived = {
        "session_watch_seconds": F.when(view_end, F.col("watch_seconds")),
        "watch_seconds": F.when(heartbeat & (state == "playing"), F.lit(float(HEARTBEAT_INTERVAL_SECONDS)))
        .otherwise(F.lit(0.0)),
        "is_buffering": (event_type == EventType.BUFFER_START.value) | (heartbeat & (state == "buffering")),
        # The receive time, not the build's clock: a rebuilt partition must hold the very same rows.
        "created_at": F.col("kafka_timestamp"),
        "event_date": F.to_date(F.col("event_timestamp")),
    }
    return conform(silver.withColumns(derived), FACT_STREAM_EVENTS)

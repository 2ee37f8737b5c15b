"""Silver: viewer events typed, deduplicated by event_id and session-stitched, in event-hour Delta partitions."""

from __future__ import annotations

from batch_layer.silver.job import affected_hours, build_silver, hours_between
from batch_layer.silver.transform import LATE_GRACE, affected_event_hours, silver_events

__all__ = ["LATE_GRACE", "affected_event_hours", "affected_hours", "build_silver", "hours_between", "silver_events"]

"""What the session metrics (QoE, view_end) share: a session's outcome (in Python and as Spark columns), events in
event-time order, and re-sent events dropped on a stream.

The outcome flags are judged on the facts up to a session's end (the first ``play_end`` or fatal error by event
time; for a session that stopped sending events, everything seen): see :func:`outcome_flags`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column


REFUSAL_ERROR_CODES = frozenset({"STREAM_LIMIT_REACHED"})
"""Fatal error codes that refuse a play request by rule (plan limits) rather than fail it."""


def outcome_flags(*, requested: bool, first_frame_ms: int | None, fatal_ms: int | None, fatal_code: str | None,
                  play_end_ms: int | None) -> dict[str, bool]:
    """The outcome flags of a session from its lifecycle facts (the definitions are in docs/qoe.md).

    The end is the earlier of ``play_end_ms`` and ``fatal_ms``; facts after it do not count. With neither,
    the session ended by timeout and every fact counts.
    """
    ends = [ms for ms in (play_end_ms, fatal_ms) if ms is not None]
    end_ms = min(ends) if ends else None
    started = first_frame_ms is not None and (end_ms is None or first_frame_ms <= end_ms)
    fatal = fatal_ms is not None and fatal_ms == end_ms
    refused = fatal and not started and fatal_code in REFUSAL_ERROR_CODES
    return {
        "started": started,
        "start_failure": fatal and not started and not refused,
        "exit_before_start": requested and not started and not fatal,
        "failed_after_start": fatal and started,
    }


def outcome_flag_columns(*, requested: Column, first_frame_ms: Column, fatal_ms: Column, fatal_code: Column,
                         play_end_ms: Column) -> dict[str, Column]:
    """:func:`outcome_flags` as Spark columns (null times are absent facts), for rows that carry a session's facts."""
    from pyspark.sql import functions as F

    end_ms = F.least(play_end_ms, fatal_ms)  # least() skips nulls: null only when both are
    started = first_frame_ms.isNotNull() & (end_ms.isNull() | (first_frame_ms <= end_ms))
    fatal = fatal_ms.isNotNull() & (fatal_ms == end_ms)
    refused = fatal & ~started & F.coalesce(fatal_code.isin(*sorted(REFUSAL_ERROR_CODES)), F.lit(False))
    return {
        "started": started,
        "start_failure": fatal & ~started & ~refused,
        "exit_before_start": F.coalesce(requested, F.lit(False)) & ~started & ~fatal,
        "failed_after_start": fatal & started,
    }


def epoch_ms(values: pd.Series) -> pd.Series:
    """Event times (naive UTC or aware) as integer epoch milliseconds."""
    if pd.api.types.is_datetime64_any_dtype(values) and not values.hasnans:
        # The integers under the times (naive ones are UTC, as to_datetime(utc=True) reads them): no arithmetic
        # on Timestamps, which costs more than everything else a small group does.
        return values.dt.as_unit("ns").astype("int64") // 1_000_000
    times = pd.to_datetime(values, utc=True)
    return (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _value(value: Any) -> Any:
    """A pandas cell as a plain Python value (None for missing)."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    return value.item() if hasattr(value, "item") else value


def ordered_events(frames: Iterable[pd.DataFrame]) -> list[dict[str, Any]]:
    """The rows of one group's frames as dicts with ``ms`` (epoch ms), oldest first (arrival order on ties)."""
    rows: list[dict[str, Any]] = []
    for frame in frames:
        if frame.empty:
            continue
        millis = epoch_ms(frame["event_timestamp"]).tolist()
        names = [str(name) for name in frame.columns]
        # Column by column (``to_dict("records")`` indexes every cell: most of a small group's cost).
        columns = [frame[name].tolist() for name in frame.columns]
        for ms, values in zip(millis, zip(*columns, strict=True), strict=True):
            event = {name: _value(value) for name, value in zip(names, values, strict=True)}
            event["ms"] = int(ms)
            rows.append(event)
    rows.sort(key=lambda event: event["ms"])
    return rows



def drop_resent(events: DataFrame) -> DataFrame:
    """Valid events with a re-sent one (same ``event_id``) counted once: on a stream with an event-time watermark,
    Spark state kept for the watermark's delay (``dropDuplicatesWithinWatermark``). A batch frame is returned as it
    is: the batch layer hands the transforms silver's events, de-duplicated already (and without the id)."""
    if events.isStreaming:
        return events.dropDuplicatesWithinWatermark(["event_id"])
    return events


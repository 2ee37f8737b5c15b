"""Quality of ``silver_events``: one event hour at a time, against bronze; and how fresh the newest event is.

The hour's suite: ``event_id`` present and unique, every NOT NULL column filled, ``event_type`` a viewer event
type and the envelope's closed sets (device type, network quality, ...) and ranges respected, and as many rows
as bronze holds distinct valid viewer ``event_id`` values of that event hour (silver drops nothing and counts
nothing twice). Freshness is separate (a warning, not an error): the newest event time in the table must be
within ``quality_freshness_max_age_seconds`` of now.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import great_expectations as gx

from batch_layer.quality.read import delta_table, hour_filter, read_frame
from batch_layer.quality.suite import (
    CheckOutcome,
    columns_read,
    envelope_value_expectations,
    not_null_expectations,
    rule,
    unique_expectation,
    validate,
)
from batch_layer.silver.job import SILVER_SOURCES
from batch_layer.silver.transform import VIEWER_EVENT_TYPES
from warehouse_models.tables import SILVER_EVENTS

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.expectations import Expectation

    from warehouse_models.settings import Settings

KEYS: tuple[str, ...] = ("event_id",)
BRONZE_COLUMNS: tuple[str, ...] = ("event_id", "event_type", "parse_error", "event_timestamp")
"""What the row-count comparison reads of bronze."""


def silver_hour_suite(*, bronze_event_ids: int) -> list[Expectation]:
    """The expectations on one event hour of silver, given how many distinct valid event ids bronze has for it."""
    return [
        *not_null_expectations(SILVER_EVENTS),
        unique_expectation("event_id", "event_id is unique within the event hour"),
        *envelope_value_expectations(SILVER_EVENTS, value_sets={"event_type": VIEWER_EVENT_TYPES}),
        gx.expectations.ExpectTableRowCountToEqual(
            value=bronze_event_ids,
            meta=rule(f"silver rows of the hour == distinct valid bronze event_ids of the hour ({bronze_event_ids})")),
    ]


def bronze_event_ids_of_hour(bronze: pd.DataFrame, hour: datetime) -> int:
    """Distinct ``event_id`` values of bronze rows that silver keeps (validated viewer events) in the event hour.

    Args:
        bronze: rows of the bronze viewer tables with :data:`BRONZE_COLUMNS` (``event_timestamp`` UTC-aware).
        hour: the event hour (aware, on the hour).
    """
    import pandas as pd

    start = pd.Timestamp(hour.astimezone(timezone.utc))
    kept = (bronze["parse_error"].isna() & bronze["event_type"].isin(VIEWER_EVENT_TYPES)
            & (bronze["event_timestamp"] >= start) & (bronze["event_timestamp"] < start + pd.Timedelta(hours=1)))
    return int(bronze.loc[kept, "event_id"].nunique())


def freshness_suite(*, now: datetime, max_age: timedelta) -> list[Expectation]:
    """The newest ``event_timestamp`` is at most ``max_age`` before ``now``."""
    oldest_allowed = now.astimezone(timezone.utc) - max_age
    return [gx.expectations.ExpectColumnMaxToBeBetween(
        column="event_timestamp", min_value=oldest_allowed,
        meta=rule(f"newest event_time in silver_events is at most {int(max_age.total_seconds())} s old "
                  f"(after {oldest_allowed.isoformat()})"))]


def check_silver_hour(settings: Settings, hour: datetime) -> CheckOutcome:
    """Read one event hour of silver and the bronze rows of that hour, and run :func:`silver_hour_suite`."""
    import pandas as pd

    bronze = pd.concat([read_frame(settings, spec, columns=BRONZE_COLUMNS, where=hour_filter("event_timestamp", hour))
                        for spec in SILVER_SOURCES], ignore_index=True)
    suite = silver_hour_suite(bronze_event_ids=bronze_event_ids_of_hour(bronze, hour))
    frame = read_frame(settings, SILVER_EVENTS, columns=columns_read(suite, keys=KEYS),
                       where=hour_filter("event_hour", hour))
    return validate(frame, suite, table=SILVER_EVENTS.name, scope=f"event_hour {hour.isoformat()}", keys=KEYS)


def newest_event_hour(settings: Settings) -> datetime | None:
    """The latest ``event_hour`` partition silver holds (None when it is empty), read from the Delta log only."""
    values = [p["event_hour"] for p in delta_table(settings, SILVER_EVENTS).partitions() if p.get("event_hour")]
    return max((partition_time(v) for v in values), default=None)


def partition_time(value: str) -> datetime:
    """A timestamp partition value from the Delta log as an aware UTC time (the log writes it in UTC)."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def check_silver_freshness(settings: Settings, *, now: datetime | None = None) -> CheckOutcome:
    """Run :func:`freshness_suite` on the newest event hour of silver (an empty table fails it)."""
    now = now or datetime.now(timezone.utc)
    max_age = timedelta(seconds=settings.quality_freshness_max_age_seconds)
    suite = freshness_suite(now=now, max_age=max_age)
    hour = newest_event_hour(settings)
    where = hour_filter("event_hour", hour) if hour is not None else None
    frame = read_frame(settings, SILVER_EVENTS, columns=["event_timestamp"], where=where)
    scope = f"newest event_hour {hour.isoformat()}" if hour else "(empty)"
    return validate(frame, suite, table=SILVER_EVENTS.name, scope=scope)

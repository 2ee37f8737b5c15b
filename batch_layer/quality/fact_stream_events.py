"""Quality of ``fact_stream_events``: one event date at a time, against silver and the dimensions.

The date's suite: ``event_id`` present and unique, every NOT NULL column filled, ``event_type`` a viewer event
type and the envelope's closed sets and ranges respected; every ``content_id`` in ``dim_content`` and every
``user_id`` in ``dim_users`` (referential integrity); every playhead position at most the title's duration
plus ``quality_position_tolerance_seconds`` (live channels have no duration and are not judged); and as many
rows as silver holds for that date (the fact table drops and adds nothing).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

import great_expectations as gx

from batch_layer.quality.read import TableNotBuiltError, count_rows, day_filter, distinct_values, read_frame
from batch_layer.quality.suite import (
    CheckOutcome,
    columns_read,
    envelope_value_expectations,
    not_null_expectations,
    rule,
    unique_expectation,
    validate,
)
from batch_layer.silver.transform import VIEWER_EVENT_TYPES
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, SILVER_EVENTS, TableSpec

if TYPE_CHECKING:
    from collections.abc import Collection

    import pandas as pd
    from great_expectations.expectations import Expectation

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

KEYS: tuple[str, ...] = ("event_id", "content_id")
"""The columns a failure's samples name (the event, and the title for positions and references)."""

DURATION_LIMIT = "duration_limit_seconds"
"""Column :func:`with_duration_limit` adds: the title's duration plus the tolerance (null for live or unknown)."""

ENVELOPE_SKIPPED: tuple[str, ...] = ("watch_seconds",)
"""The fact's ``watch_seconds`` is the heartbeat's playing time, not the envelope's whole-session figure."""


def with_duration_limit(fact: pd.DataFrame, durations: pd.DataFrame, *, tolerance_seconds: float) -> pd.DataFrame:
    """The fact rows with :data:`DURATION_LIMIT` from ``dim_content`` (``content_id``, ``duration_minutes``)."""
    limits = durations.set_index("content_id")["duration_minutes"].astype("float64") * 60.0 + tolerance_seconds
    return fact.assign(**{DURATION_LIMIT: fact["content_id"].map(limits).astype("float64")})


def fact_date_suite(*, silver_rows: int, content_ids: Collection[str] | None, user_ids: Collection[str] | None,
                    tolerance_seconds: float) -> list[Expectation]:
    """The expectations on one event date of the fact table (its frame has :data:`DURATION_LIMIT` added).

    ``content_ids`` / ``user_ids`` None: that dimension is not built yet (a new deployment, or a backfill whose
    first hours run before the nightly dimensions), so the references to it are not judged this time.
    """
    references = []
    if content_ids is not None:
        references.append(gx.expectations.ExpectColumnValuesToBeInSet(
            column="content_id", value_set=sorted(content_ids),
            meta=rule(f"content_id is in dim_content ({len(content_ids)} titles)")))
    if user_ids is not None:
        references.append(gx.expectations.ExpectColumnValuesToBeInSet(
            column="user_id", value_set=sorted(user_ids),
            meta=rule(f"user_id is in dim_users ({len(user_ids)} users)")))
    return [
        *not_null_expectations(FACT_STREAM_EVENTS),
        unique_expectation("event_id", "event_id is unique within the event date"),
        *envelope_value_expectations(FACT_STREAM_EVENTS, value_sets={"event_type": VIEWER_EVENT_TYPES},
                                     skip=ENVELOPE_SKIPPED),
        *references,
        gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=DURATION_LIMIT, column_B="position_seconds", or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta=rule(f"position_seconds <= the title's duration + {tolerance_seconds:g} s")),
        gx.expectations.ExpectTableRowCountToEqual(
            value=silver_rows, meta=rule(f"fact rows of the date == silver rows of the date ({silver_rows})")),
    ]


def _keys_if_built(settings: Settings, spec: TableSpec, column: str) -> list[str] | None:
    """A dimension's keys, or None (with a warning) when the dimension is not built yet."""
    try:
        return distinct_values(settings, spec, column)
    except TableNotBuiltError:
        logger.warning("%s is not built yet: the fact's references to it are not judged this time (the nightly "
                       "dimensions build it; `reelytics backfill` builds it with the daily partitions)", spec.name)
        return None


def check_fact_date(settings: Settings, day: date) -> CheckOutcome:
    """Read one event date of the fact table, silver's count for it and the dimensions' keys; run the suite."""
    import pandas as pd

    tolerance = settings.quality_position_tolerance_seconds
    content_ids = _keys_if_built(settings, DIM_CONTENT, "content_id")
    suite = fact_date_suite(
        silver_rows=count_rows(settings, SILVER_EVENTS, where=day_filter("event_hour", day, timestamp=True)),
        content_ids=content_ids,
        user_ids=_keys_if_built(settings, DIM_USERS, "user_id"),
        tolerance_seconds=tolerance,
    )
    columns = [c for c in columns_read(suite, keys=KEYS) if c != DURATION_LIMIT]
    fact = read_frame(settings, FACT_STREAM_EVENTS, columns=columns,
                      where=day_filter("event_date", day, timestamp=False))
    durations = (read_frame(settings, DIM_CONTENT, columns=["content_id", "duration_minutes"])
                 if content_ids is not None else pd.DataFrame({"content_id": [], "duration_minutes": []}))
    frame = with_duration_limit(fact, durations, tolerance_seconds=tolerance)
    return validate(frame, suite, table=FACT_STREAM_EVENTS.name, scope=f"event_date {day.isoformat()}", keys=KEYS)

"""Quality of the marts, the cheap part: every column a mart declares NOT NULL is filled in the date checked.

Each mart is one :class:`~warehouse_models.tables.TableSpec` in ``warehouse_models.marts``; the suite comes from
it alone, so a mart added there is checked without a change here. Daily marts are read by ``event_date``, the
hourly QoE mart by the 24 ``event_hour`` partitions of the date.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from batch_layer.quality.read import day_filter, read_frame
from batch_layer.quality.suite import CheckOutcome, columns_read, not_null_expectations, validate

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

    from warehouse_models.settings import Settings
    from warehouse_models.tables import TableSpec


def mart_suite(spec: TableSpec) -> list[Expectation]:
    """The expectations on one date of a mart."""
    return not_null_expectations(spec)


def check_mart_date(settings: Settings, spec: TableSpec, day: date) -> CheckOutcome:
    """Read the date's partition(s) of the mart and run :func:`mart_suite`."""
    (column,) = spec.partition_by
    is_timestamp = next(c.type for c in spec.columns if c.name == column) == "timestamp"
    suite = mart_suite(spec)
    frame = read_frame(settings, spec, columns=columns_read(suite),
                       where=day_filter(column, day, timestamp=is_timestamp))
    return validate(frame, suite, table=spec.name, scope=f"event_date {day.isoformat()}")

"""The one time filter every batch view applies to its input: rows in ``[start, end)`` of a timestamp column."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def between(frame: DataFrame, column: str, *, end: datetime, start: datetime | None = None) -> DataFrame:
    """The rows whose ``column`` is before ``end`` (and at or after ``start`` when given); aware times only."""
    from pyspark.sql import functions as F

    for value in (start, end):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone; pass aware UTC times")
    condition = F.col(column) < F.lit(end)
    if start is not None:
        condition = condition & (F.col(column) >= F.lit(start))
    return frame.where(condition)

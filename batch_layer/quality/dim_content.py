"""Quality of ``dim_content`` (rebuilt whole, so the whole table is checked): one row per ``content_id``.

The suite: ``content_id`` present and unique, every NOT NULL column filled, ``content_type`` and
``age_rating`` from the envelope's closed sets and ``duration_minutes`` within its range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batch_layer.quality.read import read_frame
from batch_layer.quality.suite import (
    CheckOutcome,
    columns_read,
    envelope_value_expectations,
    not_null_expectations,
    unique_expectation,
    validate,
)
from warehouse_models.tables import DIM_CONTENT

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

    from warehouse_models.settings import Settings

KEYS: tuple[str, ...] = ("content_id",)


def dim_content_suite() -> list[Expectation]:
    """The expectations on the whole content dimension."""
    return [
        *not_null_expectations(DIM_CONTENT),
        unique_expectation("content_id", "content_id is unique (one row per title or channel)"),
        *envelope_value_expectations(DIM_CONTENT),
    ]


def check_dim_content(settings: Settings) -> CheckOutcome:
    """Read the columns the suite names and run :func:`dim_content_suite`."""
    suite = dim_content_suite()
    frame = read_frame(settings, DIM_CONTENT, columns=columns_read(suite, keys=KEYS))
    return validate(frame, suite, table=DIM_CONTENT.name, scope="(whole table)", keys=KEYS)

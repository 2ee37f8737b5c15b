"""Quality of ``dim_users`` (SCD type 2, rebuilt whole, so the whole table is checked).

The suite: ``(user_id, valid_from)`` unique and ``user_key`` unique, every NOT NULL column filled, exactly one
current version (``is_current``) per user, every closed version ending after it starts, and the plan
(``subscription_type``, ``max_streams``) and ``age_group`` from the envelope's closed sets and ranges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import great_expectations as gx

from batch_layer.quality.read import read_frame
from batch_layer.quality.suite import (
    CheckOutcome,
    columns_read,
    envelope_value_expectations,
    not_null_expectations,
    rule,
    unique_expectation,
    validate,
)
from warehouse_models.tables import DIM_USERS

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.expectations import Expectation

    from warehouse_models.settings import Settings

KEYS: tuple[str, ...] = ("user_id", "valid_from")

CURRENT_VERSIONS = "current_versions_of_user"
"""Column :func:`with_current_versions` adds: how many rows of the row's user are current."""


def with_current_versions(users: pd.DataFrame) -> pd.DataFrame:
    """The rows with :data:`CURRENT_VERSIONS` (the count of ``is_current`` rows of the same ``user_id``)."""
    current = users["is_current"].fillna(False).astype("int64")
    return users.assign(**{CURRENT_VERSIONS: current.groupby(users["user_id"]).transform("sum")})


def dim_users_suite() -> list[Expectation]:
    """The expectations on the whole user dimension (its frame has :data:`CURRENT_VERSIONS` added)."""
    return [
        *not_null_expectations(DIM_USERS),
        gx.expectations.ExpectCompoundColumnsToBeUnique(
            column_list=["user_id", "valid_from"], meta=rule("(user_id, valid_from) is unique (one row per version)")),
        unique_expectation("user_key", "user_key is unique"),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column=CURRENT_VERSIONS, min_value=1, max_value=1,
            meta=rule("exactly one current version (is_current) per user_id")),
        gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="valid_to", column_B="valid_from", ignore_row_if="either_value_is_missing",
            meta=rule("a closed version ends after it starts (valid_to > valid_from)")),
        *envelope_value_expectations(DIM_USERS),
    ]


def check_dim_users(settings: Settings) -> CheckOutcome:
    """Read the columns the suite names and run :func:`dim_users_suite`."""
    suite = dim_users_suite()
    columns = [c for c in columns_read(suite, keys=KEYS) if c != CURRENT_VERSIONS] + ["is_current"]
    frame = with_current_versions(read_frame(settings, DIM_USERS, columns=list(dict.fromkeys(columns))))
    return validate(frame, suite, table=DIM_USERS.name, scope="(whole table)", keys=KEYS)

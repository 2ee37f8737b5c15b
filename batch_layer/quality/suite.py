"""Expectation suites from the table definitions, run with great-expectations, and their results made short.

Every check builds a list of great-expectations (1.x) expectations from ``warehouse_models`` (the
:class:`~warehouse_models.tables.TableSpec` columns that may not be null, the envelope's closed value sets and
numeric ranges in :data:`~warehouse_models.events.ENVELOPE_FIELDS`), adds its table's own rules, and hands a
pandas frame and the list to :func:`validate`. That runs them in an ephemeral data context (nothing is written
to disk and no project directory is needed) and returns a :class:`CheckOutcome`: which expectations failed, on
which column, how many rows were bad and a few sample values, plus a one-paragraph :attr:`CheckOutcome.why`.

Each expectation carries ``meta["rule"]``, the sentence a failure is reported with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig

from warehouse_models.events import FIELDS_BY_NAME

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.expectations import Expectation

    from warehouse_models.tables import TableSpec

logger = logging.getLogger(__name__)

SAMPLE_VALUES = 5
"""How many offending values (and their keys) a failure reports."""

_NUMERIC_TYPES = frozenset({"int", "long", "double"})


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold: what it asked, where, how many rows broke it and some of them."""

    expectation: str
    """The great-expectations type, e.g. ``expect_column_values_to_be_unique``."""
    rule: str
    """The rule in words (the expectation's ``meta["rule"]``)."""
    column: str | None
    """The column (or ``a, b`` for a pair or compound) it looked at; None for a table-level expectation."""
    bad_rows: int | None
    """Rows that broke it (None for aggregate expectations such as a row count)."""
    observed: str | None
    """The observed value of an aggregate expectation (a row count, a maximum)."""
    samples: tuple[str, ...] = ()
    """A few offending values, each with the key columns of its row when there are any."""

    def as_dict(self) -> dict[str, Any]:
        """The failure as plain JSON-able values (for metadata)."""
        return {"expectation": self.expectation, "rule": self.rule, "column": self.column,
                "bad_rows": self.bad_rows, "observed": self.observed, "samples": list(self.samples)}

    def sentence(self) -> str:
        """The failure in one line: the rule, the column, the count and the samples."""
        where = f" [{self.column}]" if self.column else ""
        count = f": {self.bad_rows} bad rows" if self.bad_rows is not None else ""
        observed = f" (observed {self.observed})" if self.observed is not None else ""
        samples = f", e.g. {'; '.join(self.samples)}" if self.samples else ""
        return f"{self.rule}{where}{count}{observed}{samples}"


@dataclass(frozen=True)
class CheckOutcome:
    """What one run of a suite over one table (or partition of it) found."""

    table: str
    scope: str
    """Which part of the table was read, e.g. ``event_hour 2026-03-01T10:00:00+00:00``."""
    rows: int
    expectations: int
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def why(self) -> str:
        """A short text: all good, or every failed rule with its count and samples."""
        if self.passed:
            return f"{self.table} {self.scope}: all {self.expectations} expectations hold on {self.rows} rows."
        lines = [f"{self.table} {self.scope}: {len(self.failures)} of {self.expectations} expectations failed "
                 f"on {self.rows} rows:"]
        lines += [f"- {failure.sentence()}" for failure in self.failures]
        return "\n".join(lines)


def merged(outcomes: Sequence[CheckOutcome], *, scope: str) -> CheckOutcome:
    """One outcome for the same suite run over several partitions of a table (a backfill's hours or dates): rows
    and expectations summed, each failure's rule prefixed with the partition it was found in."""
    if not outcomes:
        raise ValueError("merged() needs at least one outcome")
    if len(outcomes) == 1:
        return outcomes[0]
    failures = tuple(replace(f, rule=f"{o.scope}: {f.rule}") for o in outcomes for f in o.failures)
    return CheckOutcome(table=outcomes[0].table, scope=scope, rows=sum(o.rows for o in outcomes),
                        expectations=sum(o.expectations for o in outcomes), failures=failures)


def rule(text: str) -> dict[str, str]:
    """The ``meta`` of an expectation whose failure is reported as ``text``."""
    return {"rule": text}


def not_null_expectations(spec: TableSpec, *, columns: Iterable[str] | None = None) -> list[Expectation]:
    """One not-null expectation per column the table declares ``nullable=False`` (optionally only ``columns``)."""
    wanted = None if columns is None else set(columns)
    return [
        gx.expectations.ExpectColumnValuesToNotBeNull(
            column=c.name, meta=rule(f"{c.name} is declared NOT NULL in {spec.name}"))
        for c in spec.columns
        if not c.nullable and (wanted is None or c.name in wanted)
    ]


def envelope_value_expectations(spec: TableSpec, *, value_sets: Mapping[str, Sequence[str]] | None = None,
                                skip: Iterable[str] = ()) -> list[Expectation]:
    """Expectations that the table's envelope columns hold values the envelope allows.

    A column named like an envelope field of the same type gets the field's closed value set (``choices``,
    e.g. ``device_type``) and its numeric range (``minimum``/``maximum``, e.g. ``position_seconds``).

    Args:
        spec: the table.
        value_sets: a narrower set for some columns (silver holds only viewer event types, not catalog ones).
        skip: columns whose meaning in this table differs from the envelope's.
    """
    narrowed = dict(value_sets or {})
    skipped = set(skip)
    found: list[Expectation] = []
    for column in spec.columns:
        envelope = FIELDS_BY_NAME.get(column.name)
        if column.name in skipped or envelope is None or envelope.column.type != column.type:
            continue
        choices = narrowed.get(column.name, envelope.choices)
        if choices is not None:
            allowed = sorted(str(c) for c in choices)
            found.append(gx.expectations.ExpectColumnValuesToBeInSet(
                column=column.name, value_set=allowed,
                meta=rule(f"{column.name} is one of the envelope's values ({', '.join(allowed)})")))
        if column.type in _NUMERIC_TYPES and (envelope.minimum is not None or envelope.maximum is not None):
            found.append(gx.expectations.ExpectColumnValuesToBeBetween(
                column=column.name, min_value=envelope.minimum, max_value=envelope.maximum,
                meta=rule(f"{column.name} is within the envelope's range [{envelope.minimum}, {envelope.maximum}]")))
    return found


def unique_expectation(column: str, why: str) -> Expectation:
    """The column holds no value twice (nulls aside: pair it with a not-null expectation)."""
    return gx.expectations.ExpectColumnValuesToBeUnique(column=column, meta=rule(why))


def columns_read(expectations: Iterable[Expectation], *, keys: Iterable[str] = ()) -> list[str]:
    """The columns a suite looks at plus the key columns its failures are reported with (in first-seen order)."""
    names: dict[str, None] = dict.fromkeys(keys)
    for expectation in expectations:
        config = expectation.configuration.kwargs
        for name in ("column", "column_A", "column_B"):
            if config.get(name):
                names[config[name]] = None
        for name in config.get("column_list") or ():
            names[name] = None
    return list(names)


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if kwargs.get("column_list"):
        return ", ".join(kwargs["column_list"])
    return None


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_text(v) for v in value) + ")"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars print as np.float64(...) otherwise
        value = value.item()
    return str(value)


def _samples(result: Mapping[str, Any], keys: Sequence[str], column: str | None) -> tuple[str, ...]:
    """Offending values, each with its row's key columns when the result has them (distinct, at most a few)."""
    indexed = result.get("partial_unexpected_index_list") or []
    seen: dict[str, None] = {}
    if indexed and keys:
        shown = [k for k in keys if k not in (column or "").split(", ")]
        for row in indexed:
            value = ", ".join(f"{k}={_text(v)}" for k, v in row.items() if k not in shown)
            key = ", ".join(f"{k}={_text(row[k])}" for k in shown if k in row)
            seen[f"{value} ({key})" if key and value else value or key] = None
    else:
        for value in result.get("partial_unexpected_list") or []:
            seen[_text(value)] = None
    return tuple(list(seen)[:SAMPLE_VALUES])


def failure_of(expectation_type: str, kwargs: Mapping[str, Any], meta: Mapping[str, Any] | None,
               result: Mapping[str, Any], *, keys: Sequence[str] = (), error: str | None = None) -> Failure:
    """A :class:`Failure` from the parts of one great-expectations result (pure; the runner passes them)."""
    column = _column_of(kwargs)
    rule_text = (meta or {}).get("rule") or expectation_type
    if error is not None:
        return Failure(expectation_type, rule_text, column, None, f"error: {error}")
    bad = result.get("unexpected_count")
    observed = result.get("observed_value")
    return Failure(
        expectation=expectation_type, rule=rule_text, column=column,
        bad_rows=int(bad) if bad is not None else None,
        observed=_text(observed) if observed is not None else None,
        samples=_samples(result, keys, column),
    )


def validate(frame: pd.DataFrame, expectations: Sequence[Expectation], *, table: str, scope: str,
             keys: Sequence[str] = ()) -> CheckOutcome:
    """Run ``expectations`` over ``frame`` with great-expectations' pandas engine in an ephemeral context.

    Args:
        frame: the rows to check (the columns the expectations name, and ``keys``).
        expectations: the suite's expectations (each with ``meta["rule"]``).
        table: the checked table's name (for the outcome's text).
        scope: the part of the table ``frame`` holds (for the outcome's text).
        keys: columns that identify a row; a failure's samples name them (e.g. ``event_id``).
    """
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas(table).add_dataframe_asset(table)
             .add_batch_definition_whole_dataframe(scope).get_batch(batch_parameters={"dataframe": frame}))
    suite = gx.ExpectationSuite(name=f"{table}_quality", expectations=list(expectations))
    present_keys = [k for k in keys if k in frame.columns]
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
    if present_keys:
        result_format["unexpected_index_column_names"] = present_keys
    results = batch.validate(suite, result_format=result_format)
    failures = []
    for one in results.results:
        if one.success:
            continue
        config = one.expectation_config
        assert config is not None, "great-expectations attaches its configuration to every result"
        raised = one.exception_info.get("raised_exception") if one.exception_info else False
        error = str(one.exception_info.get("exception_message")) if raised else None
        failures.append(failure_of(config.type, config.kwargs, config.meta, dict(one.result or {}),
                                   keys=present_keys, error=error))
    outcome = CheckOutcome(table, scope, len(frame), len(suite.expectations), tuple(failures))
    logger.info("%s", outcome.why)
    return outcome

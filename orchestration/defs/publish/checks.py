"""Publish checks: the reconciliation drift check, and the gate that reads the blocking quality checks' latest
evaluations before anything is published."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagster import AssetCheckKey, AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from batch_layer.reconcile.drift import describe, over_threshold

if TYPE_CHECKING:
    from dagster import DagsterInstance

RECONCILIATION_DRIFT = AssetCheckSpec(
    "reconciliation_drift", asset="reconciliation",
    description="Every reconciled hour's speed-layer buckets are within reconcile_max_relative_drift of the batch "
                "result, for every additive view metric.",
)


def reconciliation_drift_result(rows: Sequence[Mapping[str, Any]], max_relative_drift: float) -> AssetCheckResult:
    """Pass when no (hour, view, metric) row drifts more than the limit; else fail naming each one."""
    over = over_threshold(rows, max_relative_drift)
    worst = max((float(r["relative_drift"]) for r in rows), default=0.0)
    hours = sorted({r["hour"].isoformat() for r in rows})
    metadata: dict[str, Any] = {
        "hours_checked": MetadataValue.json(hours),
        "rows_checked": MetadataValue.int(len(rows)),
        "max_relative_drift": MetadataValue.float(worst),
        "threshold": MetadataValue.float(max_relative_drift),
    }
    if not over:
        return AssetCheckResult(check_name=RECONCILIATION_DRIFT.name, passed=True, metadata=metadata)
    failing = sorted({f"{r['view']} @ {r['hour'].isoformat()}" for r in over})
    metadata["over_threshold"] = MetadataValue.md(describe(over).replace("\n", "  \n"))
    return AssetCheckResult(
        check_name=RECONCILIATION_DRIFT.name, passed=False, severity=AssetCheckSeverity.ERROR,
        description=(f"speed and batch disagree beyond {max_relative_drift:.2%} for {', '.join(failing)}; see "
                     "over_threshold, then look at the speed queries' progress (reelytics status) and re-run the "
                     "hour's warehouse partition"),
        metadata=metadata,
    )


def blocking_check_failures(instance: DagsterInstance, checks: Iterable[tuple[str, str]]) -> list[str]:
    """``<asset> / <check>: <what it said>`` for each blocking check whose latest evaluation failed.

    Args:
        checks: (asset key as a user string, check name) pairs; a check never evaluated does not block.
    """
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    keys = [AssetCheckKey(AssetKey.from_user_string(asset), name) for asset, name in checks]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    failures = []
    for key in keys:
        record = latest.get(key)
        if record is None or record.status != AssetCheckExecutionRecordStatus.FAILED:
            continue
        evaluation = record.evaluation
        said = (evaluation.description if evaluation is not None and evaluation.description else "failed")
        failures.append(f"{key.asset_key.to_user_string()} / {key.name}: {said}")
    return failures

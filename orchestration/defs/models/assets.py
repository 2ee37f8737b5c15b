"""The ``models`` group: the daily recommendation model, trained on gold, evaluated, published if it passes.

One run reads the ``recs_history_days`` ending with the partition's date, trains ALS and the content index,
evaluates ALS, content, popularity and the hybrid on the held-out days, keeps the version in the model registry
and publishes it (Redis for the API, the gold tables for analysts) unless it is worse than the current model by
more than ``recs_promote_margin``. Every metric is numeric metadata, so the asset's page plots them run after
run; the table in ``metrics`` compares the recommenders of this run.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations of the context parameter.

import time
from collections.abc import Iterator

from dagster import AssetExecutionContext, AssetSpec, Failure, MaterializeResult, MetadataValue, multi_asset

from orchestration.defs.warehouse.assets import SPARK_TAGS
from orchestration.defs.warehouse.partitions import daily_partitions
from orchestration.resources import ReelyticsSettingsResource
from warehouse_models.recommendations import RECS_SIMILAR_TITLES, RECS_USER_TOP_N

GROUP = "models"

MODEL_ASSET = "recommendation_model"


def metrics_markdown(metrics: dict[str, dict[str, float]]) -> str:
    """The recommenders side by side, one row each (the plain figures are also separate metadata entries)."""
    columns = ("precision_at_10", "recall_at_10", "map_at_10", "ndcg_at_10", "catalog_coverage")
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model, values in metrics.items():
        lines.append(f"| {model} | " + " | ".join(f"{values.get(c, 0.0):.4f}" for c in columns) + " |")
    return "\n".join(lines)


@multi_asset(
    group_name=GROUP,
    specs=[
        AssetSpec(MODEL_ASSET, deps=["fact_stream_events", "dim_content", "dim_users"], kinds={"python", "redis"},
                  description="The recommendation model version trained on the days ending with the partition's "
                              "date: ALS (implicit), TF-IDF content similarity, popularity per country and device, "
                              "and their hybrid, with held-out metrics; published to Redis when it passes the gate."),
        AssetSpec(RECS_USER_TOP_N.name, deps=[MODEL_ASSET], kinds={"delta"}, description=RECS_USER_TOP_N.doc,
                  skippable=True),
        AssetSpec(RECS_SIMILAR_TITLES.name, deps=[MODEL_ASSET], kinds={"delta"},
                  description=RECS_SIMILAR_TITLES.doc, skippable=True),
    ],
    partitions_def=daily_partitions,
    # Training takes both cores: it queues behind the Spark runs like one of them.
    op_tags=SPARK_TAGS,
)
def recommendation_model(context: AssetExecutionContext,
                         settings: ReelyticsSettingsResource) -> Iterator[MaterializeResult]:
    """Train, evaluate, keep and (if it passes the gate) publish the day's recommendation model."""
    from batch_layer.models.job import TrainingDataError, run_daily
    from batch_layer.models.registry import RegistryError

    s = settings.get()
    day = context.partition_time_window.start.date()
    started = time.monotonic()
    try:
        result = run_daily(s, day=day, progress=context.log.info)
    except (TrainingDataError, RegistryError, ValueError) as error:
        raise Failure(description=str(error), allow_retries=False) from error
    seconds = round(time.monotonic() - started, 3)
    manifest = result.version.manifest
    metrics: dict[str, dict[str, float]] = manifest["metrics"]
    metadata: dict[str, MetadataValue] = {
        "version": MetadataValue.text(result.version.version),
        "published": MetadataValue.bool(result.published),
        "gate": MetadataValue.text(result.reason),
        "data_range": MetadataValue.text(f"{manifest['data_from']} .. {manifest['data_to']} "
                                         f"(held out from {manifest['split_day']})"),
        "params": MetadataValue.json(manifest["params"]),
        "sizes": MetadataValue.json(manifest["sizes"]),
        "timings": MetadataValue.json(manifest["timings"]),
        "metrics": MetadataValue.md(metrics_markdown(metrics)),
        "seconds": MetadataValue.float(seconds),
        "path": MetadataValue.path(str(result.version.path)),
    }
    for model, values in metrics.items():
        for name in ("precision_at_10", "recall_at_10", "map_at_10", "ndcg_at_10", "catalog_coverage"):
            metadata[f"{model}_{name}"] = MetadataValue.float(round(float(values[name]), 6))
    hybrid, popularity = metrics["hybrid"]["precision_at_10"], metrics["popularity"]["precision_at_10"]
    metadata["p_at_10_ratio_vs_popularity"] = MetadataValue.float(round(hybrid / popularity, 4) if popularity else 0.0)
    yield MaterializeResult(asset_key=MODEL_ASSET, metadata=metadata)
    if not result.published or result.delta_rows is None:
        context.log.warning("model %s kept but not published: %s", result.version.version, result.reason)
        return
    for spec in (RECS_USER_TOP_N, RECS_SIMILAR_TITLES):
        yield MaterializeResult(asset_key=spec.name, metadata={
            "rows": MetadataValue.int(result.delta_rows[spec.name]),
            "model_version": MetadataValue.text(result.version.version),
        })


MODELS_ASSETS = [recommendation_model]

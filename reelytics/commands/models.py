"""`reelytics models`: the recommendation model versions (list, show, promote, rollback) and a training run."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import typer
from rich.console import Console
from rich.table import Table

from warehouse_models.settings import load_settings

console = Console()
app = typer.Typer(help="Recommendation models: the versions the daily `models` run in Dagster kept, which one the "
                       "API serves, and promoting or rolling back by hand.", no_args_is_help=True)

_FIGURES = ("precision_at_10", "recall_at_10", "map_at_10", "ndcg_at_10", "catalog_coverage")


@app.command("list")
def list_versions(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per version instead of a table."),
) -> None:
    """Every kept version, oldest first: data range, parameters, the hybrid's held-out metrics, the gate's answer
    and which one is published."""
    from batch_layer.models.registry import Registry

    settings = load_settings()
    registry = Registry(settings.models_path)
    versions = registry.versions()
    current = registry.current()
    if as_json:
        for model in versions:
            typer.echo(json.dumps({**model.manifest, "current": current is not None and
                                   model.version == current.version}, sort_keys=True, default=str))
        return
    if not versions:
        console.print(f"no model version under {settings.models_path} yet: materialize the "
                      "[bold]recommendation_model[/] asset in Dagster (job models_daily) or run "
                      "`reelytics models train`")
        return
    table = Table(title=f"models under {settings.models_path}")
    for column in ("version", "data", "factors/iters/alpha", "hybrid p@10", "ndcg@10", "popularity p@10", "gate",
                   "current"):
        table.add_column(column)
    for model in versions:
        m = model.manifest
        als = m.get("params", {}).get("als", {})
        hybrid = m.get("metrics", {}).get("hybrid", {})
        popularity = m.get("metrics", {}).get("popularity", {})
        gate = m.get("gate", {})
        table.add_row(model.version, f"{m.get('data_from')} .. {m.get('data_to')}",
                      f"{als.get('factors')}/{als.get('iterations')}/{als.get('alpha')}",
                      f"{hybrid.get('precision_at_10', 0):.4f}", f"{hybrid.get('ndcg_at_10', 0):.4f}",
                      f"{popularity.get('precision_at_10', 0):.4f}",
                      "passed" if gate.get("publish") else ("refused" if gate else "-"),
                      "●" if current is not None and model.version == current.version else "")
    console.print(table)


@app.command("show")
def show(version: str = typer.Argument(..., help="A version from `reelytics models list`.")) -> None:
    """One version whole: parameters, data range, sizes, timings, every recommender's metrics, the gate."""
    from batch_layer.models.registry import Registry, RegistryError

    try:
        model = Registry(load_settings().models_path).get(version)
    except RegistryError as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from exc
    metrics = model.manifest.get("metrics", {})
    table = Table(title=f"{version}: held-out metrics")
    table.add_column("recommender")
    for name in _FIGURES:
        table.add_column(name)
    for recommender, values in metrics.items():
        table.add_row(recommender, *(f"{values.get(name, 0):.4f}" for name in _FIGURES))
    console.print(table)
    rest = {k: v for k, v in model.manifest.items() if k != "metrics"}
    typer.echo(json.dumps(rest, indent=2, sort_keys=True, default=str))


@app.command("promote")
def promote(version: str = typer.Argument(..., help="A kept version (even one the gate refused).")) -> None:
    """Publish a version to Redis and the gold tables and make it current, whatever the gate said."""
    from batch_layer.models.job import promote as promote_version
    from batch_layer.models.registry import RegistryError

    try:
        model = promote_version(load_settings(), version, progress=lambda line: console.print(f"  {line}"))
    except RegistryError as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"[green]✓[/] {model.version} is published")


@app.command("rollback")
def rollback() -> None:
    """Publish again the version that was current before the current one."""
    from batch_layer.models.job import rollback as rollback_version
    from batch_layer.models.registry import RegistryError

    try:
        model = rollback_version(load_settings(), progress=lambda line: console.print(f"  {line}"))
    except RegistryError as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"[green]✓[/] rolled back to {model.version}")


@app.command("train")
def train(
    day: str | None = typer.Option(None, "--day", help="Last date of the training range (YYYY-MM-DD, UTC). "
                                   "Default: yesterday."),
) -> None:
    """Train, evaluate and (if it passes the gate) publish a model now, as the daily Dagster run does.

    Reads gold (`fact_stream_events`, `dim_content`, `dim_users`) for REELYTICS_RECS_HISTORY_DAYS days ending with
    the day; the newest REELYTICS_RECS_HOLDOUT_DAYS of them are held out to evaluate.
    """
    from batch_layer.models.job import TrainingDataError, run_daily

    settings = load_settings()
    until = date.fromisoformat(day) if day else (datetime.now(timezone.utc) - timedelta(days=1)).date()
    try:
        result = run_daily(settings, day=until, progress=lambda line: console.print(f"  {line}"))
    except (TrainingDataError, ValueError) as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from exc
    mark = "[green]✓[/] published" if result.published else "[yellow]![/] kept, not published"
    console.print(f"{mark}: {result.version.version} ({result.reason})")

"""`reelytics bench [NAME] [--quick]`: run a benchmark and show its figures."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.table import Table

from bench import harness
from warehouse_models.settings import load_settings

logger = logging.getLogger(__name__)

console = Console()


def _format(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.3g}"


def _list_table() -> Table:
    table = Table(title="benchmarks")
    table.add_column("name")
    table.add_column("what it measures")
    for name, bench in harness.registry().items():
        table.add_row(name, bench.summary)
    return table


def bench(
    name: str = typer.Argument(None, help="Benchmark to run (e.g. baselines); omit to list them."),
    quick: bool = typer.Option(False, "--quick", help="A smaller run, for a smoke test (seconds, not minutes)."),
) -> None:
    """Run one benchmark against the running services and write bench/results/NAME.json."""
    if name is None:
        console.print(_list_table())
        console.print("Run one with `reelytics bench NAME [--quick]`.")
        return
    if name not in harness.registry():
        console.print(f"[red]✗[/] no benchmark named {name!r}; known: {', '.join(harness.registry())}")
        raise typer.Exit(2)
    bench_logger = logging.getLogger("bench")
    if bench_logger.getEffectiveLevel() > logging.INFO:
        bench_logger.setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    with console.status(f"running {name}{' (quick)' if quick else ''}..."):
        record = harness.run(name, out_dir=harness.DEFAULT_OUT_DIR, quick=quick, settings=settings)

    table = Table(title=f"{name}{' (quick)' if quick else ''}: {record['when']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for figure, value in record["figures"].items():
        table.add_row(figure, _format(value), record["targets"].get(figure, ""))
    console.print(table)
    console.print(f"written to {harness.DEFAULT_OUT_DIR / (name + '.json')}")

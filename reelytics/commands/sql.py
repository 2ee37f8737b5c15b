"""`reelytics sql`: query the gold tables with DuckDB (a query, a file, the table list, or a prompt)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from warehouse_models.settings import load_settings

if TYPE_CHECKING:
    import pyarrow as pa

    from batch_layer.analyst import AnalystConnection

logger = logging.getLogger(__name__)

PROMPT = "sql> "
CONTINUATION = "  -> "
HELP_TEXT = ("End a statement with ';' (it may span lines). .tables lists the views, .help shows this, "
             ".quit (or Ctrl-D) leaves; Ctrl-C drops the statement being typed.")


class OutputFormat(StrEnum):
    """How results are printed."""

    table = "table"
    csv = "csv"
    json = "json"


def result_table(result: pa.Table, *, max_rows: int) -> Table:
    """A rich table of (at most ``max_rows`` of) a result; null shows as NULL."""
    from batch_layer.analyst import format_cell

    table = Table()
    numeric = {f.name for f in result.schema if _is_numeric(f.type)}
    for name in result.column_names:
        table.add_column(name, justify="right" if name in numeric else "left", overflow="fold")
    for row in result.slice(0, max_rows).to_pylist():
        table.add_row(*("[dim]NULL[/]" if v is None else escape(format_cell(v)) for v in row.values()))
    return table


def _is_numeric(type_: pa.DataType) -> bool:
    import pyarrow.types as pat

    return pat.is_integer(type_) or pat.is_floating(type_) or pat.is_decimal(type_)


def tables_table(connection: AnalystConnection) -> Table:
    """The views with their row counts, columns and Delta source."""
    table = Table(title="gold views")
    table.add_column("view")
    table.add_column("rows", justify="right")
    table.add_column("columns", overflow="fold")
    table.add_column("source", overflow="fold")
    for info in connection.tables():
        table.add_row(info.name, f"{info.rows:,}", ", ".join(info.columns), info.source)
    for name in connection.missing:
        table.add_row(f"[dim]{name}[/]", "-", "[dim]not built yet[/]", "")
    return table


def print_result(result: pa.Table, *, output_format: OutputFormat, max_rows: int, console: Console) -> None:
    """Print a result: a rich table, or plain CSV / JSON on stdout (for pipes)."""
    from batch_layer.analyst import format_csv, format_json

    if output_format is OutputFormat.csv:
        sys.stdout.write(format_csv(result))
    elif output_format is OutputFormat.json:
        sys.stdout.write(format_json(result) + "\n")
    elif not result.column_names:
        console.print("OK")
    else:
        console.print(result_table(result, max_rows=max_rows))
        count = f"{result.num_rows:,} row{'' if result.num_rows == 1 else 's'}"
        more = result.num_rows > max_rows
        console.print(f"[dim]{max_rows:,} of {count} shown (--max-rows)[/]" if more else f"[dim]{count}[/]")


def statement_complete(buffer: str) -> bool:
    """True when the text typed so far ends a statement (its last non-blank character is ';')."""
    return buffer.rstrip().endswith(";")


def interactive(connection: AnalystConnection, *, output_format: OutputFormat, max_rows: int, console: Console,
                read_line: Callable[[str], str] = input) -> None:
    """Read statements until ';', run and print each; `.tables`, `.help`, `.quit` between statements."""
    from batch_layer.analyst import QueryError

    console.print(f"DuckDB over {len(connection.views)} gold views: {', '.join(connection.views)}. {HELP_TEXT}")
    lines: list[str] = []
    while True:
        try:
            line = read_line(CONTINUATION if lines else PROMPT)
        except EOFError:
            break
        except KeyboardInterrupt:
            lines = []
            console.print()
            continue
        command = line.strip()
        if not lines and command.startswith("."):
            if command in (".quit", ".exit", ".q"):
                break
            if command == ".tables":
                console.print(tables_table(connection))
            elif command == ".help":
                console.print(HELP_TEXT)
            else:
                console.print(f"[red]error:[/] unknown command {command}; {HELP_TEXT}")
            continue
        if not lines and not command:
            continue
        lines.append(line)
        text = "\n".join(lines)
        if not statement_complete(text):
            continue
        lines = []
        try:
            result = connection.query(text)
        except QueryError as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            continue
        print_result(result, output_format=output_format, max_rows=max_rows, console=console)


def sql(
    query: str | None = typer.Argument(None, help="SQL to run (DuckDB dialect). Without it (and without --file or "
                                       "--tables) an interactive prompt opens."),
    file: Path | None = typer.Option(None, "--file", "-f", exists=True, dir_okay=False, readable=True,
                                     help="Run the SQL in this file (several statements: the last one's result)."),
    tables: bool = typer.Option(False, "--tables", help="List the views with their row counts and columns."),
    output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", case_sensitive=False,
                                               help="table (rich), csv or json (plain, on stdout, every row)."),
    max_rows: int = typer.Option(200, "--max-rows", min=1, help="Rows of a result to show with --format table."),
) -> None:
    """Query the gold tables (fact, dims, marts) with DuckDB: one view per Delta table, read through deltalake."""
    from batch_layer.analyst import AnalystError, QueryError, open_duckdb

    console = Console()
    errors = Console(stderr=True)
    if query is not None and file is not None:
        errors.print("[red]error:[/] give a query or --file, not both")
        raise typer.Exit(2)
    settings = load_settings()
    try:
        connection = open_duckdb(settings)
    except AnalystError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc
    try:
        if tables:
            console.print(tables_table(connection))
            return
        if query is None and file is None:
            interactive(connection, output_format=output_format, max_rows=max_rows, console=console)
            return
        text = file.read_text(encoding="utf-8") if file is not None else query
        try:
            result = connection.query(text or "")
        except QueryError as exc:
            errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from exc
        print_result(result, output_format=output_format, max_rows=max_rows, console=console)
    finally:
        connection.close()

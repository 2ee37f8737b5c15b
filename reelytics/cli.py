"""`reelytics`: the one command for the platform (services, simulator, demo, benchmarks)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import typer

HELP = (
    "Reelytics: Lambda-architecture analytics for video on demand and live TV.\n\n"
    "Typical first run: `reelytics up` (start Kafka, Redis, Dagster), `reelytics status`, "
    "`reelytics simulate --minutes 10` (a simulated audience into Kafka), `reelytics down`. "
    "`reelytics demo` does all of it in one go. Every address is a REELYTICS_* setting "
    "(e.g. REELYTICS_KAFKA_BOOTSTRAP_SERVERS, REELYTICS_REDIS_URL, REELYTICS_SPARK_MASTER)."
)

LEAN_COMMANDS = ("sql",)
"""Commands whose process builds an app of that command alone: `reelytics sql` answers an analyst in about a
second, and importing every other command (the collector's web stack, the simulator, Kafka clients) first was a
tenth of it."""


def configure_logging(level: str) -> None:
    """Configure logging once, at the entry point; client libraries stay at WARNING."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "py4j", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG)


def _root(log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR.",
                                        case_sensitive=False)) -> None:
    configure_logging(log_level)


def build_app(only: str | None = None) -> typer.Typer:
    """The `reelytics` app with every command, or with the command ``only`` alone (one of :data:`LEAN_COMMANDS`)."""
    app = typer.Typer(name="reelytics", help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)
    app.callback()(_root)
    if only == "sql":
        from reelytics.commands import sql

        app.command("sql")(sql.sql)
        return app
    from reelytics.commands import (
        api,
        backfill,
        bench,
        bronze,
        collector,
        demo,
        dlq,
        models,
        services,
        simulate,
        speed,
        sql,
    )

    app.command("up")(services.up)
    app.command("down")(services.down)
    app.command("status")(services.status)
    app.command("simulate")(simulate.simulate)
    app.command("demo")(demo.demo)
    app.command("bench")(bench.bench)
    app.command("collector")(collector.collector)
    app.command("bronze")(bronze.bronze)
    app.command("dlq")(dlq.dlq)
    app.command("sql")(sql.sql)
    app.command("backfill", help=backfill.HELP)(backfill.backfill)
    app.add_typer(speed.app, name="speed")
    app.add_typer(api.app, name="api")
    app.add_typer(models.app, name="models")
    return app


def command_name(argv: Sequence[str]) -> str | None:
    """The subcommand of a command line (its first word that is not a root option or an option's value)."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def __getattr__(name: str) -> Any:
    """``app``: the full app, built on first use (``reelytics.cli.app`` for tests and tools)."""
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Run the command, then leave without the interpreter's teardown of native libraries.

    After a command that used Spark's gateway, pyarrow (deltalake, DuckDB) and librdkafka in one process, one of
    their thread pools can abort the process while the interpreter shuts down ("terminate called without an
    active exception"), after every result was printed, turning a success into exit status 134. Everything the
    command wrote is flushed first, so skipping that teardown loses nothing and keeps the command's own status.
    """
    import os
    import sys

    code: int = 0
    command = command_name(sys.argv[1:])
    try:
        build_app(command if command in LEAN_COMMANDS else None)()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

"""`reelytics`: the one command for the platform (services, simulator, demo, benchmarks)."""

from __future__ import annotations

import logging

import typer

from reelytics.commands import backfill, bench, bronze, collector, demo, dlq, services, simulate, speed, sql

app = typer.Typer(
    name="reelytics",
    help=(
        "Reelytics: Lambda-architecture analytics for video on demand and live TV.\n\n"
        "Typical first run: `reelytics up` (start Kafka, Redis, Dagster), `reelytics status`, "
        "`reelytics simulate --minutes 10` (a simulated audience into Kafka), `reelytics down`. "
        "`reelytics demo` does all of it in one go. Every address is a REELYTICS_* setting "
        "(e.g. REELYTICS_KAFKA_BOOTSTRAP_SERVERS, REELYTICS_REDIS_URL, REELYTICS_SPARK_MASTER)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def configure_logging(level: str) -> None:
    """Configure logging once, at the entry point; client libraries stay at WARNING."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "py4j", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG)


@app.callback()
def _root(log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR.",
                                        case_sensitive=False)) -> None:
    configure_logging(log_level)


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
    try:
        app()
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

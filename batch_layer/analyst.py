"""Analyst access to the gold tables: DuckDB views over Delta (through deltalake and Arrow), Spark SQL views.

:func:`open_duckdb` opens an in-memory DuckDB connection with one view per gold table (the star schema of
:mod:`warehouse_models.tables` plus every mart of :mod:`warehouse_models.marts`) that exists under the Delta
root. Each view is the table's current Delta version: ``deltalake`` reads the Delta log (which files make that
version, their partition values and row counts) and the view is DuckDB's own ``read_parquet`` over exactly those
files, with the partition columns taken from the files' ``column=value`` folders (:func:`parquet_view_sql`).
DuckDB then prunes files by partition value before opening them, and ``EXPLAIN`` shows it ("File Filters",
"Scanning Files: 1/30"). A table whose files DuckDB cannot read as they are (deletion vectors, column mapping,
files outside their partition folders: :func:`direct_read_blocker`) is read through deltalake's Arrow dataset
instead, and the log says why. No DuckDB extension is downloaded (its own ``delta`` extension would be, at run
time).
:func:`register_spark_views` gives Spark SQL the same names, so a query runs unchanged on either engine.

:func:`schema_markdown` renders ``docs/schema.md`` (every column of every gold table, from the TableSpecs,
and :data:`EXAMPLE_QUERIES`); ``python -m batch_layer.analyst`` rewrites the file.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, TableSpec

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

STAR_TABLES: tuple[TableSpec, ...] = (FACT_STREAM_EVENTS, DIM_CONTENT, DIM_USERS)
"""The gold star schema; the marts come from :func:`gold_tables`."""

SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "schema.md"
"""The generated schema page in the repository."""

BUILD_HINT = ("materialize the gold assets in Dagster (`reelytics up`, then the UI) or run `reelytics backfill` "
              "for a date range")


class AnalystError(RuntimeError):
    """A problem an analyst can act on; the message says what to do."""


class NoGoldTablesError(AnalystError):
    """No gold table exists under the Delta root yet."""


class QueryError(AnalystError):
    """The engine refused or failed a query; the message is the engine's."""


@dataclass(frozen=True)
class ExampleQuery:
    """An analyst question and the SQL that answers it (DuckDB and Spark SQL alike)."""

    question: str
    sql: str
    note: str = ""


@dataclass(frozen=True)
class TableInfo:
    """One view of an analyst connection: its rows and columns, and the Delta version behind it."""

    name: str
    rows: int
    columns: tuple[str, ...]
    source: str


@dataclass
class AnalystConnection:
    """A DuckDB connection with a view per gold table, and which known gold tables were not found."""

    connection: duckdb.DuckDBPyConnection
    sources: dict[str, str]
    """View name -> where it reads from (Delta path and version)."""
    missing: tuple[str, ...] = field(default=())

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(self.sources)

    def query(self, sql: str) -> pa.Table:
        """Run one statement (or several: the last one's result) and return the result as Arrow."""
        return run_query(self.connection, sql, missing=self.missing)

    def tables(self) -> list[TableInfo]:
        """Every view with its row count and columns, in the order of the specs."""
        infos = []
        for name, source in self.sources.items():
            rows = self.connection.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()
            columns = [row[0] for row in self.connection.execute(f"DESCRIBE {_quote(name)}").fetchall()]
            infos.append(TableInfo(name, int(rows[0]) if rows else 0, tuple(columns), source))
        return infos

    def close(self) -> None:
        self.connection.close()


def gold_tables() -> tuple[TableSpec, ...]:
    """The gold star schema, then every mart spec of ``warehouse_models.marts`` when that module exists."""
    try:
        marts = importlib.import_module("warehouse_models.marts")
    except ModuleNotFoundError as exc:
        if exc.name != "warehouse_models.marts":
            raise
        return STAR_TABLES
    found = getattr(marts, "MART_TABLES", None)
    if found is None:
        found = tuple(value for value in vars(marts).values() if isinstance(value, TableSpec))
    from warehouse_models.recommendations import RECOMMENDATION_TABLES

    specs = {spec.name: spec for spec in (*STAR_TABLES, *found, *RECOMMENDATION_TABLES) if spec.layer == "gold"}
    return tuple(specs.values())


def deltalake_uri(path: str) -> str:
    """The URI delta-rs understands for a Delta path Spark uses (``s3a://`` is Hadoop's name for ``s3://``)."""
    return "s3://" + path[len("s3a://"):] if path.startswith("s3a://") else path


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_connection(sources: Mapping[str, Any]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per Arrow table or dataset, in UTC.

    Times are UTC everywhere, so the session time zone is UTC: ``CAST(event_timestamp AS DATE)`` is then the
    same date as the tables' ``event_date``. Extensions are never installed from the network; the ones
    compiled into the wheel (ICU, JSON, Parquet) are enough.
    """
    import duckdb

    connection = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    connection.execute("SET TimeZone = 'UTC'")
    for name, data in sources.items():
        connection.register(name, data)
    return connection


def run_query(connection: duckdb.DuckDBPyConnection, sql: str, *, missing: Sequence[str] = ()) -> pa.Table:
    """Run SQL on a connection; a DuckDB error becomes a :class:`QueryError` with DuckDB's message."""
    import duckdb
    import pyarrow as pa

    try:
        relation = connection.sql(sql)
        return pa.table({}) if relation is None else relation.to_arrow_table()
    except duckdb.Error as exc:
        message = str(exc).strip()
        hint = ""
        absent = [name for name in missing if name.lower() in message.lower()]
        if isinstance(exc, duckdb.CatalogException) and absent:
            hint = f"\n{', '.join(absent)} has not been built yet: {BUILD_HINT}."
        elif isinstance(exc, duckdb.CatalogException):
            hint = "\n`reelytics sql --tables` (or `.tables` at the prompt) lists the views and their columns."
        raise QueryError(message + hint) from exc


_BLOCKING_READER_FEATURES = {
    "deletionVectors": "it has deletion vectors (rows deleted without rewriting their files)",
    "columnMapping": "it uses column mapping (its Parquet column names are not the table's)",
}
"""Delta reader features that make a table's Parquet files, read as they are, differ from the table."""


def direct_read_blocker(*, reader_features: Iterable[str] | None, configuration: Mapping[str, str | None],
                        table_uri: str, paths: Sequence[str], partition_columns: Sequence[str]) -> str | None:
    """Why DuckDB's ``read_parquet`` over the Delta log's file list would not read the table right (None: it would).

    ``paths`` are the data files of the current version as the log holds them (relative to ``table_uri``). The
    partition columns are read from the files' ``column=value`` folders, so every file must sit under one folder
    per partition column, and no folder of the table's own location may look like one.
    """
    features = set(reader_features or ())
    for feature, why in _BLOCKING_READER_FEATURES.items():
        if feature in features:
            return why
    if (configuration.get("delta.columnMapping.mode") or "none") != "none":
        return _BLOCKING_READER_FEATURES["columnMapping"]
    if not paths:
        return "it has no data files yet"
    if "://" in table_uri and not table_uri.startswith("file://"):
        return "it is in object storage, which DuckDB reads only with an extension it would download (httpfs)"
    if any("=" in part for part in table_uri.split("/")):
        return f"its location {table_uri} has a folder named like a partition (name=value)"
    wanted = set(partition_columns)
    for path in paths:
        folders = {part.split("=", 1)[0] for part in path.split("/")[:-1] if "=" in part}
        if folders != wanted:
            return f"a data file is not under exactly its partition folders ({path})"
    return None


def columns_differ_between_files(actions: pa.Table) -> bool:
    """True when the Delta log's per-file statistics show files with different columns (the schema changed
    between writes), so DuckDB must read every file's footer to line their columns up by name.

    A file written before a column existed has no null count for it while other files have one; a file without
    statistics at all counts as different. Columns no file has statistics for say nothing either way.
    """
    rows = actions.num_rows
    for name in actions.column_names:
        if name.startswith("null_count.") and 0 < actions.column(name).null_count < rows:
            return True
    return False


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_DELTA_TO_DUCKDB = {
    "string": "VARCHAR", "long": "BIGINT", "integer": "INTEGER", "short": "SMALLINT", "byte": "TINYINT",
    "float": "FLOAT", "double": "DOUBLE", "boolean": "BOOLEAN", "binary": "BLOB", "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP",
}
"""Delta's primitive types (the names of its schema JSON) as DuckDB types; Delta's ``timestamp`` is an instant."""


def duckdb_type(delta_type: str | Mapping[str, Any]) -> str:
    """The DuckDB type of a Delta schema type (a primitive's name, or the JSON object of an array, map, struct).

    Mapped here rather than through Arrow: handing DuckDB any Arrow object first imports pandas, a second of the
    command's start.
    """
    if isinstance(delta_type, str):
        if delta_type.startswith("decimal("):
            return delta_type.upper()
        if delta_type not in _DELTA_TO_DUCKDB:
            raise ValueError(f"no DuckDB type for the Delta type {delta_type!r}")
        return _DELTA_TO_DUCKDB[delta_type]
    kind = delta_type.get("type")
    if kind == "array":
        return duckdb_type(delta_type["elementType"]) + "[]"
    if kind == "map":
        return f"MAP({duckdb_type(delta_type['keyType'])}, {duckdb_type(delta_type['valueType'])})"
    if kind == "struct":
        return "STRUCT(" + ", ".join(f"{_quote(f['name'])} {duckdb_type(f['type'])}"
                                     for f in delta_type["fields"]) + ")"
    raise ValueError(f"no DuckDB type for the Delta type {delta_type!r}")


def read_parquet_sql(files: Sequence[str], *, partition_types: Mapping[str, str], union_by_name: bool = False,
                     rows: int | None = None) -> str:
    """DuckDB's ``read_parquet(...)`` over the files, partition columns read from their ``column=value`` folders.

    Args:
        files: the data files (absolute).
        partition_types: partition column -> DuckDB type.
        union_by_name: line the files' columns up by name (when their columns differ).
        rows: the row count the Delta log records (DuckDB's estimate for join planning), if known.
    """
    options = [f"hive_partitioning = {str(bool(partition_types)).lower()}"]
    if partition_types:
        options.append("hive_types = {" + ", ".join(f"{_sql_string(c)}: {_sql_string(t)}"
                                                    for c, t in partition_types.items()) + "}")
    if union_by_name:
        options.append("union_by_name = true")
    if rows is not None:
        options.append(f"explicit_cardinality = {int(rows)}")
    return f"read_parquet([{', '.join(_sql_string(f) for f in files)}], {', '.join(options)})"


def parquet_view_sql(name: str, source: str, *, columns: Sequence[tuple[str, str]],
                     file_types: Mapping[str, str]) -> str:
    """``CREATE VIEW`` of a table over ``source`` (a :func:`read_parquet_sql`) with the table's columns and types.

    ``columns`` are the table's columns in order with their DuckDB types (from the Delta schema); ``file_types``
    the types the files give (partition columns included). A column whose type differs is cast to the table's,
    one the files lack is NULL of the table's type.
    """
    select = []
    for column, type_ in columns:
        quoted = _quote(column)
        if column not in file_types:
            select.append(f"CAST(NULL AS {type_}) AS {quoted}")
        elif file_types[column] != type_:
            select.append(f"CAST({quoted} AS {type_}) AS {quoted}")
        else:
            select.append(quoted)
    return f"CREATE OR REPLACE VIEW {_quote(name)} AS SELECT {', '.join(select)} FROM {source}"


@dataclass(frozen=True)
class DeltaSource:
    """How one view reads its table: DuckDB's Parquet reader over the log's file list, or deltalake's dataset."""

    path: str
    version: int
    files: int
    reader: str
    """``parquet`` (DuckDB over the file list, pruned by partition) or ``dataset`` (deltalake's Arrow dataset)."""
    why: str = ""
    """Why the dataset is read instead (empty for ``parquet``)."""

    def __str__(self) -> str:
        how = "read_parquet" if self.reader == "parquet" else f"deltalake dataset: {self.why}"
        return f"{self.path} (version {self.version}); {self.files} files, {how}"


def add_delta_view(connection: duckdb.DuckDBPyConnection, name: str, path: str) -> DeltaSource:
    """Create the view ``name`` over the Delta table at ``path`` (its current version); say how it reads it."""
    import pyarrow as pa
    from deltalake import DeltaTable

    table = DeltaTable(deltalake_uri(path))
    metadata, protocol = table.metadata(), table.protocol()
    # Through the C stream interface: pa.table() would first import pandas to rule it out (a second or so).
    actions = pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=True)).read_all()
    fields = json.loads(table.schema().to_json())["fields"]
    paths = actions.column("path").to_pylist()
    why = direct_read_blocker(reader_features=protocol.reader_features, configuration=metadata.configuration,
                              table_uri=table.table_uri, paths=paths, partition_columns=metadata.partition_columns)
    if why is not None:
        connection.register(name, table.to_pyarrow_dataset())
        log = logger.debug if not paths else logger.warning
        log("%s: reading %s through deltalake's Arrow dataset (no partition or file pruning in DuckDB): %s",
            name, path, why)
        return DeltaSource(path, table.version(), len(paths), "dataset", why)
    types = {field["name"]: duckdb_type(field["type"]) for field in fields}
    partition_types = {c: types[c] for c in metadata.partition_columns}
    files = table.file_uris()
    union = columns_differ_between_files(actions)
    # The files' own column types, from one footer (every footer when their columns differ).
    probe = connection.sql("SELECT * FROM " + read_parquet_sql(files if union else files[:1], union_by_name=union,
                                                               partition_types=partition_types) + " LIMIT 0")
    rows = actions.column("num_records")
    source = read_parquet_sql(files, partition_types=partition_types, union_by_name=union,
                              rows=None if rows.null_count else int(sum(rows.to_pylist())))
    connection.execute(parquet_view_sql(name, source, columns=list(types.items()),
                                        file_types=dict(zip(probe.columns, map(str, probe.types), strict=True))))
    return DeltaSource(path, table.version(), len(files), "parquet")


def open_duckdb(settings: Settings, *, specs: Sequence[TableSpec] | None = None) -> AnalystConnection:
    """Open DuckDB with a view per gold table that exists under the Delta root (the latest Delta version).

    Each view reads the table's Parquet files straight from the Delta log's file list (:func:`add_delta_view`);
    a table DuckDB cannot read that way is read through deltalake's Arrow dataset, with a warning saying why.

    Raises:
        NoGoldTablesError: none of the tables exists yet (the message says how to build them).
        AnalystError: a table exists but delta-rs cannot read it (e.g. a table feature it does not support).
    """
    from deltalake import DeltaTable

    connection = duckdb_connection({})
    described: dict[str, str] = {}
    missing: list[str] = []
    for spec in specs if specs is not None else gold_tables():
        path = spec.path(settings.delta_root_uri)
        if not DeltaTable.is_deltatable(deltalake_uri(path)):
            missing.append(spec.name)
            continue
        try:
            described[spec.name] = str(add_delta_view(connection, spec.name, path))
        except Exception as exc:  # delta-rs names the unsupported feature or the storage problem
            connection.close()
            raise AnalystError(f"cannot read {spec.name} at {path}: {exc}") from exc
        logger.debug("view %s over %s", spec.name, described[spec.name])
    if not described:
        connection.close()
        raise NoGoldTablesError(f"no gold tables under {settings.delta_root_uri.rstrip('/')}/gold yet: "
                                f"{BUILD_HINT}.")
    return AnalystConnection(connection, described, tuple(missing))


def register_spark_views(spark: SparkSession, settings: Settings, *,
                         specs: Sequence[TableSpec] | None = None) -> list[str]:
    """Create a Spark temp view per gold table that exists, named like the DuckDB views; return the names."""
    from delta.tables import DeltaTable

    names = []
    for spec in specs if specs is not None else gold_tables():
        path = spec.path(settings.delta_root_uri)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        spark.read.format("delta").load(path).createOrReplaceTempView(spec.name)
        names.append(spec.name)
    if not names:
        raise NoGoldTablesError(f"no gold tables under {settings.delta_root_uri.rstrip('/')}/gold yet: "
                                f"{BUILD_HINT}.")
    return names


# --- output ------------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as JSON would hold it: ISO-8601 times, floats for decimals, lists and dicts kept."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def format_cell(value: Any) -> str:
    """One value as text: empty for null, JSON for lists and maps, ISO-8601 for times."""
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, list | dict):
        return json.dumps(plain, ensure_ascii=False)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def format_csv(table: pa.Table) -> str:
    """The result as CSV with a header line (null is an empty field)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([format_cell(v) for v in row.values()])
    return out.getvalue()


def format_json(table: pa.Table) -> str:
    """The result as a JSON array of objects, one per row."""
    return json.dumps([{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()], ensure_ascii=False,
                      indent=1)


# --- docs/schema.md ----------------------------------------------------------------------------------------------

EXAMPLE_QUERIES: tuple[ExampleQuery, ...] = (
    ExampleQuery(
        "Which titles were watched most yesterday?",
        """\
SELECT c.content_title, c.genre_primary,
       round(sum(f.watch_seconds) / 3600, 2) AS watch_hours,
       count(DISTINCT f.user_id) AS viewers
FROM fact_stream_events AS f
JOIN dim_content AS c ON c.content_id = f.content_id
WHERE f.event_date = current_date - 1
  AND f.event_type = 'heartbeat'
GROUP BY c.content_title, c.genre_primary
ORDER BY watch_hours DESC, c.content_title
LIMIT 10""",
        "Watch time is the heartbeats' `watch_seconds` (10 per playing heartbeat); `view_end` rows carry a whole "
        "session's total and would count it twice.",
    ),
    ExampleQuery(
        "What share of views is completed, by genre?",
        """\
SELECT c.genre_primary,
       sum(p.views) AS views,
       sum(p.completed_views) AS completed_views,
       round(sum(p.completed_views) / sum(p.views), 3) AS completion_rate
FROM mart_content_performance AS p
JOIN dim_content AS c ON c.content_id = p.content_id
WHERE p.completed_views IS NOT NULL
GROUP BY c.genre_primary
ORDER BY completion_rate DESC, c.genre_primary""",
        "A view is complete when its last position reaches 90 % of the duration; live channels have no duration "
        "and are left out.",
    ),
    ExampleQuery(
        "How much do viewers rebuffer, by device type?",
        """\
SELECT device_type,
       sum(rebuffers) AS rebuffers,
       round((sum(stall_ms) / 1000) / nullif(sum(stall_ms) / 1000 + sum(playing_seconds), 0), 4)
           AS rebuffering_ratio,
       round(sum(rebuffers) * 3600 / nullif(sum(playing_seconds), 0), 2) AS rebuffers_per_hour
FROM mart_qoe_hourly
GROUP BY device_type
ORDER BY rebuffering_ratio DESC, device_type""",
        "Ratios are computed from the added sums (the formulas of docs/qoe.md), never averaged over hours.",
    ),
    ExampleQuery(
        "Which rails and buttons get clicked (CTR)?",
        """\
SELECT rail_id, button_id,
       sum(impressions) AS impressions,
       sum(clicks) AS clicks,
       round(sum(clicks) / nullif(sum(impressions), 0), 4) AS ctr
FROM mart_ctr_daily
GROUP BY rail_id, button_id
ORDER BY ctr DESC, rail_id, button_id""",
    ),
    ExampleQuery(
        "What is the plan mix of current users?",
        """\
SELECT subscription_type,
       count(*) AS users,
       round(count(*) / sum(count(*)) OVER (), 3) AS share
FROM dim_users
WHERE is_current
GROUP BY subscription_type
ORDER BY users DESC, subscription_type""",
        "`dim_users` keeps one row per version of a user; `is_current` picks today's plan.",
    ),
    ExampleQuery(
        "How many people watched, and for how long, each day?",
        """\
SELECT event_date,
       count(DISTINCT user_id) AS active_users,
       count(DISTINCT session_id) AS sessions,
       round(sum(CASE WHEN event_type = 'heartbeat' THEN watch_seconds ELSE 0 END) / 3600, 2) AS watch_hours
FROM fact_stream_events
GROUP BY event_date
ORDER BY event_date""",
    ),
    ExampleQuery(
        "How long does playback take to start, by country?",
        """\
SELECT coalesce(country, 'unknown') AS country,
       count(*) AS startups,
       round(avg(startup_ms), 1) AS mean_startup_ms,
       max(startup_ms) AS worst_startup_ms
FROM fact_stream_events
WHERE event_type = 'first_frame'
GROUP BY coalesce(country, 'unknown')
ORDER BY mean_startup_ms DESC, country""",
    ),
    ExampleQuery(
        "How much did each plan watch, by the plan users had at the time?",
        """\
SELECT u.subscription_type,
       count(DISTINCT f.user_id) AS viewers,
       round(sum(f.watch_seconds) / 3600, 2) AS watch_hours
FROM fact_stream_events AS f
JOIN dim_users AS u
  ON u.user_id = f.user_id
 AND f.event_timestamp >= u.valid_from
 AND (u.valid_to IS NULL OR f.event_timestamp < u.valid_to)
WHERE f.event_type = 'heartbeat'
GROUP BY u.subscription_type
ORDER BY watch_hours DESC, u.subscription_type""",
        "A point-in-time join on the SCD type 2 history: an event joins the version valid at its event time, so "
        "an upgrade does not rewrite what the user watched before it.",
    ),
    ExampleQuery(
        "Which accounts stream over their plan's limit most often?",
        """\
SELECT account_id,
       count(*) AS days_over_limit,
       sum(sessions_over_limit) AS sessions_over_limit,
       max(peak_streams) AS peak_streams,
       max(max_streams) AS plan_limit
FROM mart_concurrency_violations
GROUP BY account_id
ORDER BY sessions_over_limit DESC, account_id
LIMIT 20""",
    ),
    ExampleQuery(
        "Which titles lose most of their viewers before the halfway mark?",
        """\
SELECT c.content_title,
       sum(p.views) AS views,
       round(sum(p.reached_pct_050 * p.views) / sum(p.views), 3) AS reached_half,
       round(sum(p.reached_pct_090 * p.views) / sum(p.views), 3) AS reached_90_pct
FROM mart_content_performance AS p
JOIN dim_content AS c ON c.content_id = p.content_id
WHERE p.reached_pct_050 IS NOT NULL
GROUP BY c.content_title
ORDER BY reached_half, c.content_title
LIMIT 10""",
        "The drop-off curve is a share of each day's views; weighting by views adds days up correctly.",
    ),
)
"""Ten analyst questions; the SQL runs on DuckDB (`reelytics sql`) and on Spark SQL (`register_spark_views`)."""


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def schema_markdown(specs: Sequence[TableSpec] | None = None,
                    examples: Sequence[ExampleQuery] = EXAMPLE_QUERIES) -> str:
    """The text of ``docs/schema.md``: every gold table and column (from the TableSpecs) and the examples."""
    specs = tuple(specs) if specs is not None else gold_tables()
    lines = [
        "# Gold tables for analysts",
        "",
        "<!-- Generated from warehouse_models by batch_layer.analyst.schema_markdown(); "
        "rewrite with `python -m batch_layer.analyst`. -->",
        "",
        "The gold layer is the star schema (`fact_stream_events` with `dim_content` and `dim_users`) and the "
        "marts built from it. `reelytics sql` opens DuckDB with one view per table below that exists (DuckDB's "
        "Parquet reader over the files of the table's current Delta version, pruned by partition: "
        "[docs/analysts.md](analysts.md)); `batch_layer.analyst.register_spark_views(spark, settings)` gives Spark "
        "SQL the same names. Times are UTC; tables live under `<delta root>/gold/<table>`.",
        "",
        "```",
        'reelytics sql "SELECT count(*) FROM fact_stream_events"',
        "reelytics sql --file question.sql --format csv",
        "reelytics sql --tables",
        "reelytics sql            # interactive: end a statement with ';', .tables, .quit",
        "```",
        "",
        "## Tables",
        "",
    ]
    lines += [f"- [`{spec.name}`](#{spec.name}): {_md(spec.doc)}" for spec in specs]
    lines.append("")
    for spec in specs:
        partitioning = ", ".join(f"`{c}`" for c in spec.partition_by) or "none (rewritten whole)"
        lines += [
            f"### {spec.name}",
            "",
            _md(spec.doc),
            "",
            f"Partitioned by: {partitioning}.",
            "",
            "| column | type | null | meaning |",
            "|---|---|---|---|",
        ]
        for column in spec.columns:
            lines.append(f"| `{column.name}` | {column.type} | {'yes' if column.nullable else 'no'} | "
                         f"{_md(column.doc)} |")
        lines.append("")
    lines += ["## Ten questions and their SQL", ""]
    for number, example in enumerate(examples, start=1):
        lines += [f"### {number}. {example.question}", ""]
        if example.note:
            lines += [example.note, ""]
        lines += ["```sql", example.sql.rstrip() + ";", "```", ""]
    return "\n".join(lines)


def write_schema_doc(path: Path = SCHEMA_DOC) -> Path:
    """Rewrite ``docs/schema.md`` from the specs."""
    path.write_text(schema_markdown(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"wrote {write_schema_doc()}")

"""Every Delta table: its layer, columns, partitioning and place under the Delta root.

Bronze keeps what Kafka held (raw value plus the fields that validate, and topic/partition/offset);
silver is typed and deduplicated by ``event_id`` in hourly event-time partitions; gold is the star schema
analysts query (``fact_stream_events``, ``dim_content``, ``dim_users``) and its marts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from warehouse_models.dead_letter import DEAD_LETTER_COLUMNS
from warehouse_models.events import ENVELOPE_COLUMNS, TopicKind
from warehouse_models.types import Column, arrow_schema, spark_ddl

Layer = Literal["bronze", "silver", "gold"]


@dataclass(frozen=True)
class TableSpec:
    name: str
    layer: Layer
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...]
    doc: str
    source_topic: TopicKind | None = None
    stats_columns: tuple[str, ...] | None = None
    """The columns whose min, max and null count Delta records per file, for skipping files on a filter
    (``delta.dataSkippingStatsColumns``): the ones readers filter by. None: Delta's default, the first 32. The
    statistics are computed on every write; over 32 columns they were a third of a silver hour's write."""

    def path(self, delta_root: str) -> str:
        """Location of the table under a Delta root (a path or an URI)."""
        return f"{delta_root.rstrip('/')}/{self.layer}/{self.name}"

    def spark_ddl(self) -> str:
        return spark_ddl(self.columns)

    def arrow_schema(self):  # -> pa.Schema
        return arrow_schema(self.columns)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __post_init__(self) -> None:
        missing = set(self.partition_by) - {c.name for c in self.columns}
        if missing:
            raise ValueError(f"{self.name}: partition columns {sorted(missing)} are not columns")
        unknown = set(self.stats_columns or ()) - {c.name for c in self.columns}
        if unknown:
            raise ValueError(f"{self.name}: statistics columns {sorted(unknown)} are not columns")
        if set(self.stats_columns or ()) & set(self.partition_by):
            raise ValueError(f"{self.name}: partition columns need no statistics (Delta skips by their values)")


def table_properties(spec: TableSpec) -> dict[str, str]:
    """The Delta table properties a table is made with (and an older one is brought to)."""
    if spec.stats_columns is None:
        return {}
    return {"delta.dataSkippingStatsColumns": ",".join(spec.stats_columns)}


KAFKA_METADATA_COLUMNS: tuple[Column, ...] = (
    Column("kafka_topic", "string", "Topic the record was read from.", nullable=False),
    Column("kafka_partition", "int", "Partition of the record.", nullable=False),
    Column("kafka_offset", "long", "Offset of the record: (topic, partition, offset) is unique in bronze.",
           nullable=False),
    Column("kafka_timestamp", "timestamp", "Kafka record timestamp (producer create time).", nullable=False),
    Column("kafka_key", "string", "Record key (the account id for viewer events)."),
    Column("raw_value", "string", "The record value exactly as read (UTF-8).", nullable=False),
    Column("ingest_date", "date", "Date the bronze job wrote the record (processing time); the partition.",
           nullable=False),
    Column("ingested_at", "timestamp", "When the bronze job wrote the record.", nullable=False),
)

_PARSE_COLUMNS: tuple[Column, ...] = (
    Column("parse_error", "string", "Null when the value validated; else the reason (the record is kept)."),
)


BRONZE_STATS: tuple[str, ...] = ("ingested_at", "event_timestamp", "event_type", "kafka_partition", "kafka_offset")
"""Bronze is read by event time (silver's hours), by ingestion time (the hours new rows touch) and by offset."""


def _bronze(kind: TopicKind, doc: str) -> TableSpec:
    name = f"bronze_{kind.value.replace('-', '_')}"
    # Bronze keeps records that failed validation, so even the envelope's required fields may be null here.
    envelope = tuple(Column(c.name, c.type, c.doc, nullable=True) for c in ENVELOPE_COLUMNS)
    return TableSpec(name, "bronze", KAFKA_METADATA_COLUMNS + _PARSE_COLUMNS + envelope, ("ingest_date",), doc, kind,
                     stats_columns=BRONZE_STATS)


BRONZE_PLAYBACK = _bronze(TopicKind.PLAYBACK, "Raw playback records with their parsed envelope.")
BRONZE_INTERACTIONS = _bronze(TopicKind.INTERACTIONS, "Raw interaction records with their parsed envelope.")
BRONZE_CATALOG = _bronze(TopicKind.CATALOG, "Raw catalog records (titles, channels, users).")
BRONZE_DERIVED = _bronze(TopicKind.DERIVED, "Raw records the speed layer derived (view_end).")
DEAD_LETTER = TableSpec(
    "dead_letter", "bronze",
    KAFKA_METADATA_COLUMNS + DEAD_LETTER_COLUMNS,
    ("ingest_date",),
    "Every refused record with its reason, raw payload and origin.",
    TopicKind.DEAD_LETTER,
)

_EVENT_HOUR = Column("event_hour", "timestamp", "Event time truncated to the hour; the partition.", nullable=False)

SILVER_EVENTS = TableSpec(
    "silver_events", "silver",
    (_EVENT_HOUR, Column("event_date", "date", "Event-time date.", nullable=False)) + ENVELOPE_COLUMNS + (
        Column("kafka_topic", "string", "Topic of the earliest copy of the event (the one kept)."),
        Column("kafka_partition", "int", "Partition of the earliest copy."),
        Column("kafka_offset", "long", "Offset of the earliest copy."),
        Column("kafka_timestamp", "timestamp", "When Kafka got it; with event_timestamp, how late it was."),
        Column("is_late", "boolean", "Arrived after its event hour had closed (plus the grace period)."),
    ),
    ("event_hour",),
    "Viewer events (playback, interactions, derived view_end) typed, deduplicated by event_id and stitched to "
    "their session's account, user, title and device, by event hour.",
    stats_columns=("event_timestamp", "event_type", "session_id", "user_id", "content_id"),
)

SESSION_IDENTITY: tuple[str, ...] = (
    "account_id", "user_id", "content_id", "device_id", "device_type", "country", "is_live",
)
"""Who watched what where: every silver event of a session carries these, filled from the session's own events."""

_ENVELOPE_BY_NAME = {c.name: c for c in ENVELOPE_COLUMNS}


def _first_value_columns(name: str) -> tuple[Column, ...]:
    kind = _ENVELOPE_BY_NAME[name].type
    return (
        Column(name, kind, f"{name} of the hour's earliest event of the session that names it (null: none does)."),
        Column(f"{name}_at", "timestamp", f"Event time of that event (it and {name}_event_id order the candidates)."),
        Column(f"{name}_event_id", "string", "Event id of that event."),
    )


SILVER_SESSION_HOURS = TableSpec(
    "silver_session_hours", "silver",
    (
        _EVENT_HOUR,
        Column("session_id", "string", "Viewing session.", nullable=False),
        *(column for name in SESSION_IDENTITY for column in _first_value_columns(name)),
        Column("events", "long", "The session's silver events in the hour.", nullable=False),
        Column("has_gaps", "boolean",
               "Some event of the session in this hour lacks an identity field, so its silver row is filled from "
               "the session's other events (and changes when those do).", nullable=False),
    ),
    ("event_hour",),
    "Per event hour and session, the earliest value of each identity field the hour's events carry: the small "
    "state silver stitches sessions from (an hour's rows are filled from these rows of the hours around it, not "
    "from their bronze events).",
)

FACT_STREAM_EVENTS = TableSpec(
    "fact_stream_events", "gold",
    (
        Column("event_id", "string", "Unique event id.", nullable=False),
        Column("user_id", "string", "Profile (-> dim_users).", nullable=False),
        Column("content_id", "string", "Title or channel (-> dim_content); the tile's title for interactions."),
        Column("event_timestamp", "timestamp", "Event time (UTC).", nullable=False),
        Column("event_type", "string", "What happened.", nullable=False),
        Column("position_seconds", "double", "Playhead position."),
        Column("quality_level", "string", "Rendition."),
        Column("device_type", "string", "Device kind."),
        Column("network_quality", "string", "Client's connection quality."),
        Column("session_id", "string", "Viewing session (null for interactions)."),
        Column("created_at", "timestamp",
               "When the platform received the event (Kafka timestamp of the copy kept); taken from the data "
               "rather than the clock so that a rebuild writes identical rows.", nullable=False),
        Column("account_id", "string", "Paying account."),
        Column("country", "string", "Country of the event."),
        Column("device_id", "string", "Device."),
        Column("is_live", "boolean", "Live channel."),
        Column("player_state", "string", "Player state of a heartbeat."),
        Column("bitrate_kbps", "int", "Bitrate at the event."),
        Column("previous_bitrate_kbps", "int", "Bitrate before a quality change."),
        Column("is_buffering", "boolean", "The player was stalled: buffer_start, or a heartbeat while buffering."),
        Column("stall_ms", "long", "Rebuffering stall length (buffer_end)."),
        Column("startup_ms", "long", "Startup time (first_frame)."),
        Column("error_code", "string", "Error code (error events)."),
        Column("error_fatal", "boolean", "The error ended the session."),
        Column("page", "string", "Page of an impression or click."),
        Column("rail_id", "string", "Rail of an impression or click."),
        Column("button_id", "string", "Button or tile kind of an impression or click."),
        Column("slot", "int", "Position of the tile in its rail."),
        Column("rec_variant", "string", "Recommendation variant stamped on an impression or click of a "
               "recommendation rail."),
        Column("search_query", "string", "What a search event's user typed (content_id: the result chosen)."),
        Column("results_shown", "array<string>", "The titles a search showed, in order."),
        Column("watch_seconds", "double",
               "Seconds of playing this event accounts for: 10 for a heartbeat with player_state playing, else 0 "
               "(sum it for watch time; view_end rows count 0 here so nothing is counted twice)."),
        Column("session_watch_seconds", "double", "A view_end's whole-session watch seconds (null otherwise)."),
        Column("completion_pct", "double", "A view_end's last position over duration, in percent."),
        Column("end_reason", "string", "Why a view ended (view_end)."),
        Column("is_late", "boolean", "Arrived after its event hour had closed."),
        Column("event_date", "date", "Event-time date; the partition.", nullable=False),
    ),
    ("event_date",),
    "One row per viewer event: the fact table of the star schema.",
    stats_columns=("event_timestamp", "event_type", "user_id", "account_id", "content_id", "session_id", "country"),
)

DIM_CONTENT = TableSpec(
    "dim_content", "gold",
    (
        Column("content_id", "string", "Title or channel id.", nullable=False),
        Column("content_title", "string", "Title."),
        Column("content_type", "string", "vod or live."),
        Column("genre_primary", "string", "Main genre."),
        Column("genre_secondary", "string", "Second genre."),
        Column("release_date", "date", "Release date."),
        Column("duration_minutes", "int", "Running time (null for live)."),
        Column("language", "string", "Language."),
        Column("age_rating", "string", "Age rating."),
        Column("cast_members", "array<string>", "Main cast."),
        Column("director", "string", "Director."),
        Column("description", "string", "Synopsis."),
        Column("updated_at", "timestamp", "Event time of the newest catalog record."),
    ),
    (),
    "One row per title or live channel (newest catalog record).",
)

DIM_USERS = TableSpec(
    "dim_users", "gold",
    (
        Column("user_key", "string", "Surrogate key of this version of the user (SCD type 2).", nullable=False),
        Column("user_id", "string", "Profile id.", nullable=False),
        Column("account_id", "string", "Paying account."),
        Column("user_name", "string", "Display name."),
        Column("age_group", "string", "Age band."),
        Column("location_country", "string", "Home country."),
        Column("subscription_type", "string", "Plan in this version."),
        Column("max_streams", "int", "Plan's concurrent-stream limit in this version."),
        Column("join_date", "date", "Sign-up date."),
        Column("preferences", "array<string>", "Declared favourite genres."),
        Column("valid_from", "timestamp", "Start of this version (event time).", nullable=False),
        Column("valid_to", "timestamp", "End of this version; null while current."),
        Column("is_current", "boolean", "True for the current version.", nullable=False),
    ),
    (),
    "Users with their plan history (SCD type 2: one row per version).",
)

RECONCILIATION = TableSpec(
    "reconciliation", "gold",
    (
        Column("hour", "timestamp", "The closed event hour compared (UTC); the partition.", nullable=False),
        Column("view", "string", "The additive view: engagement, ctr or qoe.", nullable=False),
        Column("metric", "string", "The summed field of the view (watch_seconds, impressions, stall_ms, ...).",
               nullable=False),
        Column("key_count", "long", "Keys (users, rail/buttons, QoE slices) with a value in either layer.",
               nullable=False),
        Column("batch_total", "double", "The metric summed over the keys from the batch layer's fact rows.",
               nullable=False),
        Column("speed_total", "double", "The metric summed over the keys from the speed layer's buckets.",
               nullable=False),
        Column("absolute_drift", "double", "Sum over the keys of |speed - batch| (differences cannot cancel).",
               nullable=False),
        Column("relative_drift", "double",
               "absolute_drift / batch_total; 0 when both are 0, 1 when only the speed layer has values.",
               nullable=False),
        Column("checked_at", "timestamp", "When the comparison ran (UTC).", nullable=False),
    ),
    ("hour",),
    "Speed layer vs batch layer per closed hour and additive view metric: the proof that the two layers agree.",
)

BRONZE_TABLES: tuple[TableSpec, ...] = (BRONZE_PLAYBACK, BRONZE_INTERACTIONS, BRONZE_CATALOG, BRONZE_DERIVED,
                                        DEAD_LETTER)
ALL_TABLES: tuple[TableSpec, ...] = BRONZE_TABLES + (SILVER_EVENTS, SILVER_SESSION_HOURS, FACT_STREAM_EVENTS,
                                                     DIM_CONTENT, DIM_USERS, RECONCILIATION)
TABLES_BY_NAME: dict[str, TableSpec] = {t.name: t for t in ALL_TABLES}

"""The event envelope: what players, apps and the catalog send, in every version, and its validation.

One flat record per event (a field not used by an event type is absent or null), so that Spark reads every
topic with one schema. :func:`validate_event` never raises on bad input: it returns a :class:`Validation`
whose ``reason`` names the field and what is wrong with it, which the collector and the streaming jobs put on
the dead-letter topic with the raw payload.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from warehouse_models.types import Column

SCHEMA_VERSION = 1
"""The version producers write today."""

SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

MAX_STRING_LENGTH = 256
"""Longest accepted free-text value; identifiers are shorter (``MAX_ID_LENGTH``)."""

MAX_ID_LENGTH = 64
MAX_EVENT_AGE = timedelta(days=30)
"""Events older than this (by event time) are refused: a clock that is years off, not a late event."""

MAX_CLOCK_SKEW = timedelta(hours=1)
"""Events further in the future than this are refused."""

MAX_POSITION_SECONDS = 48 * 3600.0
"""No title or live window is longer than two days."""


class EventType(StrEnum):
    """Every kind of event, grouped by the topic it travels on (see :data:`TOPIC_OF_EVENT`)."""

    # playback lifecycle (topic: playback)
    PLAY_REQUEST = "play_request"
    """The user pressed play; startup time runs from here."""
    FIRST_FRAME = "first_frame"
    """The first frame rendered (carries ``startup_ms``)."""
    HEARTBEAT = "heartbeat"
    """Every 10 s while a session is open (position, bitrate, player state)."""
    QUALITY_CHANGE = "quality_change"
    BUFFER_START = "buffer_start"
    BUFFER_END = "buffer_end"
    """A stall ended (carries ``stall_ms``)."""
    PAUSE = "pause"
    RESUME = "resume"
    SEEK = "seek"
    ERROR = "error"
    PLAY_END = "play_end"
    """The user or the player ended the session explicitly."""
    # interactions (topic: interactions)
    IMPRESSION = "impression"
    """A tile or button was shown on a rail."""
    CLICK = "click"
    SEARCH = "search"
    """The user searched: the query, the titles shown, and the one chosen (``content_id``; none if none)."""
    # computed by the speed layer (topic: derived)
    VIEW_END = "view_end"
    # catalog (topic: catalog)
    CONTENT_UPSERT = "content_upsert"
    USER_UPSERT = "user_upsert"


class TopicKind(StrEnum):
    PLAYBACK = "playback"
    INTERACTIONS = "interactions"
    CATALOG = "catalog"
    DERIVED = "derived"
    DEAD_LETTER = "dead-letter"


PLAYBACK_TYPES = frozenset(
    {
        EventType.PLAY_REQUEST,
        EventType.FIRST_FRAME,
        EventType.HEARTBEAT,
        EventType.QUALITY_CHANGE,
        EventType.BUFFER_START,
        EventType.BUFFER_END,
        EventType.PAUSE,
        EventType.RESUME,
        EventType.SEEK,
        EventType.ERROR,
        EventType.PLAY_END,
    }
)
INTERACTION_TYPES = frozenset({EventType.IMPRESSION, EventType.CLICK})
SEARCH_TYPES = frozenset({EventType.SEARCH})
"""Searches travel on the interactions topic but are not rail interactions (no rail, no CTR)."""
CATALOG_TYPES = frozenset({EventType.CONTENT_UPSERT, EventType.USER_UPSERT})
DERIVED_TYPES = frozenset({EventType.VIEW_END})

TOPIC_OF_EVENT: dict[EventType, TopicKind] = {
    **{t: TopicKind.PLAYBACK for t in PLAYBACK_TYPES},
    **{t: TopicKind.INTERACTIONS for t in INTERACTION_TYPES | SEARCH_TYPES},
    **{t: TopicKind.CATALOG for t in CATALOG_TYPES},
    **{t: TopicKind.DERIVED for t in DERIVED_TYPES},
}

DEVICE_TYPES = ("tv", "mobile", "tablet", "web", "console", "set_top_box")
NETWORK_QUALITIES = ("excellent", "good", "fair", "poor")
QUALITY_LEVELS = ("240p", "360p", "480p", "720p", "1080p", "2160p")
PLAYER_STATES = ("playing", "paused", "buffering")
CONTENT_TYPES = ("vod", "live")
SUBSCRIPTION_TYPES = ("basic", "standard", "premium")
AGE_GROUPS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55+")
AGE_RATINGS = ("G", "PG", "PG-13", "R", "TV-Y", "TV-PG", "TV-14", "TV-MA")
END_REASONS = ("explicit_end", "heartbeat_timeout")

HEARTBEAT_INTERVAL_SECONDS = 10
"""Players send a heartbeat every 10 seconds while a session is open; a heartbeat with ``player_state ==
"playing"`` stands for that many seconds watched (speed engagement, view_end, the fact table)."""

# Patterns are anchored with \A and \Z (the very end, so "id\n" does not pass as "$" would let it): the speed
# layer's Spark check uses the same patterns in Java's dialect (see speed_layer.source).
_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
COUNTRY_PATTERN = "^[A-Z]{2}$"
"""ISO 3166-1 alpha-2, as an OpenAPI/JSON-Schema pattern (the envelope's check is :data:`_COUNTRY_RE`)."""
_COUNTRY_RE = re.compile(r"\A[A-Z]{2}\Z")
DATE_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z", re.ASCII)
TIMESTAMP_RE = re.compile(
    r"\A[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)\Z", re.ASCII)
"""The one timestamp form the envelope takes: ISO-8601 extended, seconds, up to microseconds, and a zone (``Z`` or
``+HH:MM``), e.g. ``2026-01-31T20:15:00.250Z``."""

ALL = frozenset(EventType)
_EVENTS = PLAYBACK_TYPES | INTERACTION_TYPES | SEARCH_TYPES | DERIVED_TYPES
_SESSION = PLAYBACK_TYPES | DERIVED_TYPES


@dataclass(frozen=True)
class FieldSpec:
    """A column of the envelope plus how to check it."""

    column: Column
    required_for: frozenset[EventType] = frozenset()
    allowed_for: frozenset[EventType] = ALL
    choices: tuple[str, ...] | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: re.Pattern[str] | None = None

    @property
    def name(self) -> str:
        return self.column.name


def _f(name: str, type_: Any, doc: str, **kw: Any) -> FieldSpec:
    nullable = kw.pop("nullable", True)
    return FieldSpec(Column(name, type_, doc, nullable), **kw)


_CATALOG_CONTENT = frozenset({EventType.CONTENT_UPSERT})
_CATALOG_USER = frozenset({EventType.USER_UPSERT})
_USERS_AND_EVENTS = _EVENTS | _CATALOG_USER

ENVELOPE_FIELDS: tuple[FieldSpec, ...] = (
    # --- every message ---
    _f("event_id", "string", "Client-made unique id; the idempotency key everywhere.",
       nullable=False, required_for=ALL, max_length=MAX_ID_LENGTH, pattern=_ID_RE),
    _f("schema_version", "int", "Envelope version the producer wrote.", nullable=False, required_for=ALL),
    _f("event_type", "string", "What happened (EventType).", nullable=False, required_for=ALL,
       choices=tuple(EventType)),
    _f("event_timestamp", "timestamp", "When it happened on the client, ISO-8601 with a time zone (event time).",
       nullable=False, required_for=ALL),
    # --- who and where ---
    _f("account_id", "string", "Paying account; the Kafka key, so one account's events stay in order.",
       required_for=_USERS_AND_EVENTS, allowed_for=_USERS_AND_EVENTS, max_length=MAX_ID_LENGTH, pattern=_ID_RE),
    _f("user_id", "string", "Profile within the account.", required_for=_USERS_AND_EVENTS,
       allowed_for=_USERS_AND_EVENTS, max_length=MAX_ID_LENGTH, pattern=_ID_RE),
    _f("device_id", "string", "Stable id of the device.", allowed_for=_EVENTS, max_length=MAX_ID_LENGTH,
       pattern=_ID_RE),
    _f("device_type", "string", "Kind of device.", required_for=PLAYBACK_TYPES, allowed_for=_EVENTS,
       choices=DEVICE_TYPES),
    _f("country", "string", "ISO 3166-1 alpha-2 country the event came from.", allowed_for=_EVENTS,
       pattern=_COUNTRY_RE),
    _f("network_quality", "string", "Client's view of its connection.", allowed_for=_EVENTS,
       choices=NETWORK_QUALITIES),
    _f("app_version", "string", "Player or app version.", allowed_for=_EVENTS, max_length=MAX_ID_LENGTH),
    # --- playback ---
    _f("session_id", "string", "One viewing session (play request to end).", required_for=_SESSION,
       allowed_for=_SESSION, max_length=MAX_ID_LENGTH, pattern=_ID_RE),
    _f("content_id", "string", "Title or live channel (for a search: the result chosen).",
       required_for=_SESSION | _CATALOG_CONTENT | {EventType.IMPRESSION},
       allowed_for=_EVENTS | _CATALOG_CONTENT, max_length=MAX_ID_LENGTH, pattern=_ID_RE),
    _f("is_live", "boolean", "True for a live channel.", allowed_for=_SESSION),
    _f("position_seconds", "double", "Playhead position in the title (seconds).",
       required_for=frozenset({EventType.HEARTBEAT, EventType.SEEK, EventType.PAUSE, EventType.PLAY_END}),
       allowed_for=_SESSION, minimum=0.0, maximum=MAX_POSITION_SECONDS),
    _f("player_state", "string", "Player state at a heartbeat.", required_for=frozenset({EventType.HEARTBEAT}),
       allowed_for=PLAYBACK_TYPES, choices=PLAYER_STATES),
    _f("quality_level", "string", "Rendition being played.", allowed_for=PLAYBACK_TYPES, choices=QUALITY_LEVELS),
    _f("bitrate_kbps", "int", "Bitrate of the rendition being played.", allowed_for=PLAYBACK_TYPES,
       required_for=frozenset({EventType.QUALITY_CHANGE}), minimum=0, maximum=200_000),
    _f("previous_bitrate_kbps", "int", "Bitrate before a quality change.",
       required_for=frozenset({EventType.QUALITY_CHANGE}), allowed_for=frozenset({EventType.QUALITY_CHANGE}),
       minimum=0, maximum=200_000),
    _f("startup_ms", "long", "Play request to first frame (milliseconds).",
       required_for=frozenset({EventType.FIRST_FRAME}), allowed_for=frozenset({EventType.FIRST_FRAME}),
       minimum=0, maximum=600_000),
    _f("stall_ms", "long", "Length of a rebuffering stall (milliseconds).",
       required_for=frozenset({EventType.BUFFER_END}), allowed_for=frozenset({EventType.BUFFER_END}),
       minimum=0, maximum=3_600_000),
    _f("seek_from_seconds", "double", "Position before a seek.", required_for=frozenset({EventType.SEEK}),
       allowed_for=frozenset({EventType.SEEK}), minimum=0.0, maximum=MAX_POSITION_SECONDS),
    _f("error_code", "string", "Player error code.", required_for=frozenset({EventType.ERROR}),
       allowed_for=frozenset({EventType.ERROR}), max_length=MAX_ID_LENGTH),
    _f("error_fatal", "boolean", "True when the error ended playback.", required_for=frozenset({EventType.ERROR}),
       allowed_for=frozenset({EventType.ERROR})),
    # --- interactions ---
    _f("page", "string", "Screen the rail is on (home, detail, search...).", allowed_for=INTERACTION_TYPES,
       max_length=MAX_ID_LENGTH),
    _f("rail_id", "string", "Rail (row) of tiles.", required_for=INTERACTION_TYPES, allowed_for=INTERACTION_TYPES,
       max_length=MAX_ID_LENGTH, pattern=_ID_RE),
    _f("button_id", "string", "Button or tile kind (play, trailer, add_to_list, tile...).",
       required_for=INTERACTION_TYPES, allowed_for=INTERACTION_TYPES, max_length=MAX_ID_LENGTH, pattern=_ID_RE),
    _f("slot", "int", "Position of the tile in its rail, from 0.", allowed_for=INTERACTION_TYPES,
       minimum=0, maximum=1000),
    _f("rec_variant", "string", "The recommendation variant that produced the tile (from the recommendations API's "
       "answer), on the recommendation rails.", allowed_for=INTERACTION_TYPES, max_length=MAX_ID_LENGTH,
       pattern=_ID_RE),
    # --- search ---
    _f("search_query", "string", "What the user typed.", required_for=SEARCH_TYPES, allowed_for=SEARCH_TYPES,
       max_length=MAX_STRING_LENGTH),
    _f("results_shown", "array<string>", "Ids of the titles the search showed, in order.", allowed_for=SEARCH_TYPES),
    # --- derived view_end ---
    _f("watch_seconds", "double", "Seconds actually played in the session.",
       required_for=DERIVED_TYPES, allowed_for=DERIVED_TYPES, minimum=0.0, maximum=MAX_POSITION_SECONDS),
    _f("completion_pct", "double", "Last position over duration, in percent.", allowed_for=DERIVED_TYPES,
       minimum=0.0, maximum=100.0),
    _f("end_reason", "string", "Why the view ended.", required_for=DERIVED_TYPES, allowed_for=DERIVED_TYPES,
       choices=END_REASONS),
    # --- catalog: content ---
    _f("content_title", "string", "Title.", required_for=_CATALOG_CONTENT, allowed_for=_CATALOG_CONTENT,
       max_length=MAX_STRING_LENGTH),
    _f("content_type", "string", "vod or live.", required_for=_CATALOG_CONTENT, allowed_for=_CATALOG_CONTENT,
       choices=CONTENT_TYPES),
    _f("genre_primary", "string", "Main genre.", required_for=_CATALOG_CONTENT, allowed_for=_CATALOG_CONTENT,
       max_length=MAX_ID_LENGTH),
    _f("genre_secondary", "string", "Second genre.", allowed_for=_CATALOG_CONTENT, max_length=MAX_ID_LENGTH),
    _f("release_date", "date", "Release date (YYYY-MM-DD).", allowed_for=_CATALOG_CONTENT),
    _f("duration_minutes", "int", "Running time; null for live channels.", allowed_for=_CATALOG_CONTENT,
       minimum=1, maximum=48 * 60),
    _f("language", "string", "ISO 639-1 language.", allowed_for=_CATALOG_CONTENT, max_length=8),
    _f("age_rating", "string", "Age rating.", allowed_for=_CATALOG_CONTENT, choices=AGE_RATINGS),
    _f("cast_members", "array<string>", "Main cast.", allowed_for=_CATALOG_CONTENT),
    _f("director", "string", "Director.", allowed_for=_CATALOG_CONTENT, max_length=MAX_STRING_LENGTH),
    _f("description", "string", "Synopsis (input to TF-IDF similarity).", allowed_for=_CATALOG_CONTENT,
       max_length=4 * MAX_STRING_LENGTH),
    # --- catalog: users ---
    _f("user_name", "string", "Display name.", required_for=_CATALOG_USER, allowed_for=_CATALOG_USER,
       max_length=MAX_STRING_LENGTH),
    _f("age_group", "string", "Age band.", allowed_for=_CATALOG_USER, choices=AGE_GROUPS),
    _f("location_country", "string", "Home country (ISO alpha-2).", allowed_for=_CATALOG_USER,
       pattern=_COUNTRY_RE),
    _f("subscription_type", "string", "Plan.", required_for=_CATALOG_USER, allowed_for=_CATALOG_USER,
       choices=SUBSCRIPTION_TYPES),
    _f("max_streams", "int", "The plan's limit of concurrent streams per account.", required_for=_CATALOG_USER,
       allowed_for=_CATALOG_USER, minimum=1, maximum=16),
    _f("join_date", "date", "Sign-up date.", allowed_for=_CATALOG_USER),
    _f("preferences", "array<string>", "Genres the user said they like.", allowed_for=_CATALOG_USER),
)

FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in ENVELOPE_FIELDS}
ENVELOPE_COLUMNS: tuple[Column, ...] = tuple(f.column for f in ENVELOPE_FIELDS)


def java_pattern(pattern: re.Pattern[str]) -> str:
    r"""A pattern of this module in Java's dialect: Python's ``\A...\Z`` (the very end) is Java's ``\A...\z``."""
    text = pattern.pattern
    return text[:-2] + r"\z" if text.endswith(r"\Z") else text


def envelope_rules() -> dict[str, Any]:
    """The envelope's rules as data, for a check written in another language (the speed layer's JVM check,
    ``reelytics.speed.EnvelopeViolation``, reads them from its jar): every field with its JSON-visible rules, the
    event types, the schema versions, the event-time window and the two date forms. The Python validator below is
    the reference both are tested against."""
    return {
        "event_types": sorted(t.value for t in EventType),
        "schema_versions": sorted(SUPPORTED_SCHEMA_VERSIONS),
        "max_age_micros": int(MAX_EVENT_AGE.total_seconds()) * 1_000_000,
        "max_skew_micros": int(MAX_CLOCK_SKEW.total_seconds()) * 1_000_000,
        "max_string_length": MAX_STRING_LENGTH,
        "timestamp_pattern": java_pattern(TIMESTAMP_RE),
        "date_pattern": java_pattern(DATE_RE),
        "fields": [{
            "name": spec.name, "type": spec.column.type,
            "allowed_for": sorted(t.value for t in spec.allowed_for),
            "required_for": sorted(t.value for t in spec.required_for),
            "max_length": spec.max_length, "choices": list(spec.choices) if spec.choices is not None else None,
            "pattern": java_pattern(spec.pattern) if spec.pattern is not None else None,
            "minimum": spec.minimum, "maximum": spec.maximum,
        } for spec in ENVELOPE_FIELDS],
    }


PLAN_STREAM_LIMITS: dict[str, int] = {"basic": 1, "standard": 2, "premium": 4}
"""Concurrent streams each plan allows."""


@dataclass(frozen=True, slots=True)
class Validation:
    """The outcome of validating one event: the clean event, or the reason it was refused."""

    event: dict[str, Any] | None
    reason: str | None = None
    field: str | None = None

    @property
    def ok(self) -> bool:
        return self.event is not None


def printable(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate quoted from a record becomes an escape (``\\ud800``), so a
    reason can always be encoded (Kafka, Arrow, Parquet, JSON)."""
    return text if text.isascii() or _is_unicode(text) else text.encode("utf-8", "backslashreplace").decode()


def _refuse(field: str | None, reason: str) -> Validation:
    field = printable(field) if field else field
    reason = printable(reason)
    return Validation(None, f"{field}: {reason}" if field else reason, field)


def parse_timestamp(value: Any) -> datetime:
    """Parse an ISO-8601 string with a time zone into an aware UTC datetime (ValueError otherwise)."""
    if not isinstance(value, str) or len(value) > 40 or not TIMESTAMP_RE.match(value):
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", value):
            raise ValueError("has no time zone; send UTC with a trailing Z")
        raise ValueError("must be an ISO-8601 string with a time zone, e.g. 2026-01-31T20:15:00.250Z")
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def format_timestamp(value: datetime) -> str:
    """The canonical wire form: UTC, milliseconds, trailing Z."""
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def _check_value(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    """Coerce one present, non-null value; return (value, None) or (None, reason)."""
    return _CHECKERS[spec.name](value)


Checker = Callable[[Any], tuple[Any, str | None]]


def _is_unicode(value: str) -> bool:
    """False for a string JSON can carry but UTF-8 cannot (a lone surrogate, from a ``\\ud800`` escape)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _make_checker(spec: FieldSpec) -> Checker:
    """One field's check, specialised once at import so validating an event is a dict lookup per field."""
    kind = spec.column.type
    max_length, pattern, minimum, maximum = spec.max_length, spec.pattern, spec.minimum, spec.maximum
    choices = frozenset(spec.choices) if spec.choices is not None else None
    choice_list = ", ".join(spec.choices) if spec.choices is not None else ""

    def in_range(value: Any) -> tuple[Any, str | None]:
        if minimum is not None and value < minimum:
            return None, f"{value} is below the minimum {minimum:g}"
        if maximum is not None and value > maximum:
            return None, f"{value} is above the maximum {maximum:g}"
        return value, None

    if kind == "string":
        def check_string(value: Any) -> tuple[Any, str | None]:
            if type(value) is not str and not isinstance(value, str):
                return None, f"must be a string, got {type(value).__name__}"
            if not value.isascii() and not _is_unicode(value):
                return None, "is not valid Unicode (a lone surrogate)"
            if max_length is not None and len(value) > max_length:
                return None, f"is {len(value)} characters, longer than the limit of {max_length}"
            if choices is not None and value not in choices:
                return None, f"'{value[:40]}' is not one of {choice_list}"
            if pattern is not None and not pattern.match(value):
                return None, f"'{value[:40]}' has characters not allowed here (pattern {pattern.pattern})"
            return value, None
        return check_string
    if kind in ("int", "long"):
        def check_integer(value: Any) -> tuple[Any, str | None]:
            if type(value) is not int:
                if isinstance(value, bool) or not isinstance(value, int):
                    if isinstance(value, float) and value.is_integer():
                        value = int(value)
                    else:
                        return None, f"must be an integer, got {type(value).__name__}"
            return in_range(value)
        return check_integer
    if kind == "double":
        def check_double(value: Any) -> tuple[Any, str | None]:
            if type(value) is not float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return None, f"must be a number, got {type(value).__name__}"
                try:
                    value = float(value)
                except OverflowError:  # an integer of hundreds of digits
                    return None, "must be a finite number"
            if value != value or value in (math.inf, -math.inf):
                return None, "must be a finite number"
            return in_range(value)
        return check_double
    if kind == "boolean":
        def check_boolean(value: Any) -> tuple[Any, str | None]:
            if not isinstance(value, bool):
                return None, f"must be true or false, got {type(value).__name__}"
            return value, None
        return check_boolean
    if kind == "timestamp":
        def check_timestamp(value: Any) -> tuple[Any, str | None]:
            try:
                return parse_timestamp(value), None
            except (ValueError, OverflowError) as exc:  # OverflowError: past year 9999 once in UTC
                text = str(exc)
                return None, text if "ISO" in text or "zone" in text else f"is not a valid timestamp ({exc})"
        return check_timestamp
    if kind == "date":
        def check_date(value: Any) -> tuple[Any, str | None]:
            if not isinstance(value, str) or not DATE_RE.match(value):
                return None, "must be a date YYYY-MM-DD"
            try:
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                return None, f"'{value}' is not a calendar date"
            return value, None
        return check_date
    if kind == "array<string>":
        def check_strings(value: Any) -> tuple[Any, str | None]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return None, "must be a list of strings"
            if not all(v.isascii() or _is_unicode(v) for v in value):
                return None, "holds a string that is not valid Unicode (a lone surrogate)"
            if len(value) > 64 or any(len(v) > MAX_STRING_LENGTH for v in value):
                return None, f"must hold at most 64 strings of at most {MAX_STRING_LENGTH} characters"
            return value, None
        return check_strings
    raise ValueError(f"no check for column type {kind!r} of {spec.name}")


_CHECKERS: dict[str, Checker] = {spec.name: _make_checker(spec) for spec in ENVELOPE_FIELDS}
_ALLOWED_CHECKERS: dict[EventType, dict[str, Checker]] = {
    event_type: {spec.name: _CHECKERS[spec.name] for spec in ENVELOPE_FIELDS if event_type in spec.allowed_for}
    for event_type in EventType
}
_REQUIRED: dict[EventType, tuple[str, ...]] = {
    event_type: tuple(spec.name for spec in ENVELOPE_FIELDS if event_type in spec.required_for)
    for event_type in EventType
}
_TIMESTAMP_FIELDS: tuple[str, ...] = tuple(spec.name for spec in ENVELOPE_FIELDS if spec.column.type == "timestamp")


def validate_event(
    obj: Any,
    *,
    now: datetime | None = None,
    max_age: timedelta = MAX_EVENT_AGE,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> Validation:
    """Check one decoded event against the envelope; never raises.

    Args:
        obj: the decoded JSON value (anything: a non-object is refused with a reason).
        now: the receive time event time is judged against (default: the current UTC time).
        max_age: how far in the past an event may be.
        max_skew: how far in the future an event may be.

    Returns:
        A :class:`Validation` with the clean event (timestamps as aware datetimes) or the reason.
    """
    if not isinstance(obj, Mapping):
        return _refuse(None, f"event must be a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version")
    if version is None:
        return _refuse("schema_version", "is required")
    if isinstance(version, bool) or not isinstance(version, int):
        return _refuse("schema_version", f"must be an integer, got {type(version).__name__}")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        return _refuse("schema_version", f"{version} is not supported (supported: {sorted(SUPPORTED_SCHEMA_VERSIONS)})")
    raw_type = obj.get("event_type")
    if raw_type is None:
        return _refuse("event_type", "is required")
    if not isinstance(raw_type, str) or raw_type not in EventType._value2member_map_:
        return _refuse("event_type", f"'{str(raw_type)[:40]}' is not a known event type")
    event_type = EventType(raw_type)

    allowed = _ALLOWED_CHECKERS[event_type]
    clean: dict[str, Any] = {}
    for name, value in obj.items():
        check = allowed.get(name) if isinstance(name, str) else None
        if check is None:
            if not isinstance(name, str) or name not in FIELDS_BY_NAME:
                return _refuse(str(name)[:64], "is not a field of the envelope")
            if value is None:
                continue
            return _refuse(name, f"does not belong on a {event_type.value} event")
        if value is None:
            continue
        checked, reason = check(value)
        if reason is not None:
            return _refuse(name, reason)
        clean[name] = checked
    for name in _REQUIRED[event_type]:
        if name not in clean:
            return _refuse(name, f"is required on a {event_type.value} event")

    now = now or datetime.now(timezone.utc)
    event_time: datetime = clean["event_timestamp"]
    if event_time > now + max_skew:
        return _refuse("event_timestamp", f"{format_timestamp(event_time)} is more than {max_skew} in the future")
    if event_time < now - max_age:
        return _refuse("event_timestamp",
                       f"{format_timestamp(event_time)} is more than {max_age.days} days in the past")
    clean["event_type"] = event_type
    return Validation(clean)


def decode_and_validate(raw: bytes | str, **kwargs: Any) -> Validation:
    """Decode one JSON document and validate it; bad JSON is a reason, not an exception."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested ~1,000 deep
        return _refuse(None, f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})")
    return validate_event(obj, **kwargs)


def to_wire(event: Mapping[str, Any]) -> dict[str, Any]:
    """A validated event (or a simulator event) as the JSON object written to Kafka: timestamps canonical."""
    out = {key: value for key, value in event.items() if value is not None}
    event_type = out.get("event_type")
    if isinstance(event_type, StrEnum):
        out["event_type"] = event_type.value
    for name in _TIMESTAMP_FIELDS:
        value = out.get(name)
        if isinstance(value, datetime):
            out[name] = format_timestamp(value)
    return out


_CANONICAL_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def wire_of_validated(received: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`to_wire` of ``event`` (from ``validate_event(received)``), reusing the timestamp text it came with.

    Clients that already send the canonical timestamp form (as the simulator and the SDKs do) save the
    formatting, which is the dearest part of :func:`to_wire` on the collector's hot path.
    """
    out = dict(event)
    out["event_type"] = received["event_type"]
    for name in _TIMESTAMP_FIELDS:
        text = received.get(name)
        value = out.get(name)
        if isinstance(value, datetime):
            out[name] = text if isinstance(text, str) and _CANONICAL_TIMESTAMP.match(text) else format_timestamp(value)
    return out


def encode(event: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of :func:`to_wire`."""
    return json.dumps(to_wire(event), separators=(",", ":"), ensure_ascii=False).encode()


def kafka_key(event: Mapping[str, Any]) -> bytes:
    """The Kafka key: the account for viewer events, the entity id for catalog records."""
    key = event.get("account_id") or event.get("content_id") or event.get("user_id") or event["event_id"]
    return str(key).encode()


def topic_kind(event: Mapping[str, Any]) -> TopicKind:
    return TOPIC_OF_EVENT[EventType(event["event_type"])]


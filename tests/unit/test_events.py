"""The envelope refuses every malformed event with a reason naming the field, and never raises."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from warehouse_models.events import (
    ENVELOPE_FIELDS,
    TOPIC_OF_EVENT,
    EventType,
    TopicKind,
    decode_and_validate,
    encode,
    format_timestamp,
    kafka_key,
    validate_event,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def heartbeat(**overrides):
    event = {
        "event_id": "ev-1", "schema_version": 1, "event_type": "heartbeat",
        "event_timestamp": "2026-03-01T11:59:50.000Z", "account_id": "acc-1", "user_id": "usr-1",
        "session_id": "ses-1", "content_id": "vod-1", "device_type": "tv", "position_seconds": 120.5,
        "player_state": "playing", "bitrate_kbps": 4500, "quality_level": "1080p", "country": "DE",
    }
    event.update(overrides)
    return event


def test_a_valid_heartbeat_is_accepted_and_typed():
    result = validate_event(heartbeat(), now=NOW)
    assert result.ok, result.reason
    assert result.event["event_type"] is EventType.HEARTBEAT
    assert result.event["event_timestamp"] == datetime(2026, 3, 1, 11, 59, 50, tzinfo=timezone.utc)
    assert result.event["position_seconds"] == 120.5


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"position_seconds": -1}, "position_seconds", "below the minimum"),
        ({"position_seconds": "12"}, "position_seconds", "must be a number"),
        ({"position_seconds": True}, "position_seconds", "must be a number"),
        ({"position_seconds": float("nan")}, "position_seconds", "finite"),
        ({"device_type": "toaster"}, "device_type", "is not one of"),
        ({"event_type": "teleport"}, "event_type", "not a known event type"),
        ({"schema_version": 7}, "schema_version", "not supported"),
        ({"schema_version": "1"}, "schema_version", "must be an integer"),
        ({"event_timestamp": "2026-03-01 11:59:50"}, "event_timestamp", "time zone"),
        ({"event_timestamp": "yesterday"}, "event_timestamp", "ISO-8601 string with a time zone"),
        ({"event_timestamp": "2026-02-30T11:59:50Z"}, "event_timestamp", "not a valid timestamp"),
        ({"event_timestamp": "2026-03-01T11:59:50+0000"}, "event_timestamp", "ISO-8601 string with a time zone"),
        ({"event_timestamp": 1767225600}, "event_timestamp", "ISO-8601"),
        ({"event_timestamp": "2026-03-05T00:00:00Z"}, "event_timestamp", "in the future"),
        ({"event_timestamp": "2021-03-01T00:00:00Z"}, "event_timestamp", "in the past"),
        ({"user_id": "u" * 65}, "user_id", "longer than the limit"),
        ({"event_id": "has space"}, "event_id", "not allowed"),
        ({"error_code": "E1"}, "error_code", "does not belong"),
        ({"favourite_colour": "blue"}, "favourite_colour", "not a field of the envelope"),
        ({"bitrate_kbps": 4500.5}, "bitrate_kbps", "must be an integer"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(change, field, words):
    result = validate_event(heartbeat(**change), now=NOW)
    assert not result.ok
    assert result.field == field
    assert result.reason.startswith(f"{field}: ")
    assert words in result.reason


@pytest.mark.parametrize("missing", ["event_id", "account_id", "session_id", "content_id", "position_seconds",
                                     "player_state", "device_type"])
def test_required_fields_of_a_heartbeat(missing):
    event = heartbeat()
    del event[missing]
    result = validate_event(event, now=NOW)
    assert (result.field, result.ok) == (missing, False)
    assert "is required" in result.reason


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"event_timestamp": "9999-12-31T23:00:00-05:00"}, "event_timestamp", "not a valid timestamp"),
    ({"position_seconds": 10 ** 400}, "position_seconds", "finite number"),
])
def test_values_python_cannot_hold_are_refused_not_raised(change, field, words):
    # Both raised OverflowError; in bronze's UDF that failed the job on a record a foreign producer can send.
    result = validate_event(heartbeat(**change), now=NOW)
    assert (result.ok, result.field) == (False, field) and words in result.reason


def test_json_nested_too_deep_for_the_parser_is_refused_not_raised():
    result = decode_and_validate(b"[" * 5000 + b"]" * 5000, now=NOW)
    assert not result.ok and "RecursionError" in result.reason


@pytest.mark.parametrize("raw", [b"not json", b"{\"a\": ", b"\xff\xfe", b"[1,2]", b"null", b"42", b""])
def test_undecodable_or_non_object_payloads_get_a_reason(raw):
    result = decode_and_validate(raw, now=NOW)
    assert not result.ok and result.reason


def test_a_null_optional_field_is_the_same_as_absent():
    assert validate_event(heartbeat(country=None), now=NOW).ok


def test_wire_form_round_trips():
    event = validate_event(heartbeat(event_timestamp="2026-03-01T12:59:50.123+01:00"), now=NOW).event
    wire = encode(event)
    again = decode_and_validate(wire, now=NOW)
    assert again.ok and again.event == event
    assert b'"event_timestamp":"2026-03-01T11:59:50.123Z"' in wire
    assert kafka_key(event) == b"acc-1"


def test_every_event_type_has_a_topic_and_catalog_records_validate():
    assert set(TOPIC_OF_EVENT) == set(EventType)
    content = {"event_id": "c-1", "schema_version": 1, "event_type": "content_upsert",
               "event_timestamp": format_timestamp(NOW - timedelta(minutes=1)), "content_id": "vod-1",
               "content_title": "A title", "content_type": "vod", "genre_primary": "drama",
               "duration_minutes": 95, "cast_members": ["A", "B"], "release_date": "2020-02-29"}
    assert validate_event(content, now=NOW).ok
    assert TOPIC_OF_EVENT[EventType.CONTENT_UPSERT] is TopicKind.CATALOG
    bad_date = validate_event({**content, "release_date": "2021-02-30"}, now=NOW)
    assert bad_date.field == "release_date" and "calendar date" in bad_date.reason


def test_field_names_are_unique():
    names = [f.name for f in ENVELOPE_FIELDS]
    assert len(names) == len(set(names))


def test_a_search_needs_its_query_and_takes_what_it_showed_and_chose():
    search = {"event_id": "ev-s", "schema_version": 1, "event_type": "search",
              "event_timestamp": "2026-03-01T11:59:50.000Z", "account_id": "acc-1", "user_id": "usr-1",
              "search_query": "space opera", "results_shown": ["vod-1", "vod-2"], "content_id": "vod-2"}
    assert validate_event(search, now=NOW).reason is None
    assert TOPIC_OF_EVENT[EventType.SEARCH] is TopicKind.INTERACTIONS
    assert validate_event({**search, "content_id": None}, now=NOW).reason is None  # nothing chosen
    missing = {k: v for k, v in search.items() if k != "search_query"}
    assert validate_event(missing, now=NOW).reason == "search_query: is required on a search event"
    assert validate_event({**search, "results_shown": "vod-1"}, now=NOW).reason == \
        "results_shown: must be a list of strings"
    assert validate_event({**search, "rail_id": "top"}, now=NOW).reason == "rail_id: does not belong on a search event"
    assert validate_event(heartbeat(search_query="x"), now=NOW).reason == \
        "search_query: does not belong on a heartbeat event"

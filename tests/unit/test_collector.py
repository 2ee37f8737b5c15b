"""The collector's request handling without services: bodies to items, items to records, records to answers.

The app is exercised too, with a producer that acknowledges (or fails) in memory, so the HTTP statuses and the
response shape are checked without Kafka.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from serving.collector.batch import (
    MAX_ITEM_BYTES,
    RequestRefused,
    check_batch_length,
    check_content_encoding,
    check_content_type,
    media_type,
    parse_body,
    plan_batch,
    read_body,
    summarize,
)
from warehouse_models.events import format_timestamp
from warehouse_models.settings import Settings
from warehouse_models.topics import Topics

NOW = datetime.now(timezone.utc).replace(microsecond=0)
"""Event times are near the real clock so that the app, which judges them against it, accepts them."""
TOPICS = Topics("t")


def heartbeat(event_id: str = "e-1", **changes: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id, "schema_version": 1, "event_type": "heartbeat",
        "event_timestamp": format_timestamp(NOW - timedelta(seconds=30)), "account_id": "acc-1",
        "user_id": "usr-1", "device_type": "tv", "session_id": "ses-1", "content_id": "vod-1",
        "position_seconds": 120.0, "player_state": "playing",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def click(event_id: str = "c-1") -> dict[str, Any]:
    return {"event_id": event_id, "schema_version": 1, "event_type": "click",
            "event_timestamp": format_timestamp(NOW), "account_id": "acc-2", "user_id": "usr-2",
            "rail_id": "rail-1", "button_id": "play"}


def ndjson(*events: Any) -> bytes:
    return b"\n".join(e if isinstance(e, bytes) else orjson.dumps(e) for e in events) + b"\n"


def plan(body: bytes, **kw: Any):
    return plan_batch(parse_body(body), topics=TOPICS, source="http:10.0.0.1", received_at=NOW, **kw)


# --- the request as a whole ------------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "media"), [("application/json", "application/json"),
                                                   ("application/x-ndjson; charset=utf-8", "application/x-ndjson"),
                                                   ("Application/NDJSON", "application/ndjson")])
def test_json_and_ndjson_content_types_are_read(content_type, media):
    assert media_type(content_type) == media
    assert check_content_type(content_type) is None  # accepted: no RequestRefused


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_415(content_type):
    with pytest.raises(RequestRefused) as refused:
        check_content_type(content_type)
    assert refused.value.status_code == 415 and "application/json" in refused.value.body["supported"]


def test_content_encodings():
    assert check_content_encoding(None) is False
    assert check_content_encoding("identity") is False
    assert check_content_encoding("gzip") is True
    with pytest.raises(RequestRefused) as refused:
        check_content_encoding("br")
    assert refused.value.status_code == 415


def test_gzip_bodies_are_inflated():
    body = ndjson(heartbeat("a"), heartbeat("b"))
    packed = gzip.compress(body)
    assert read_body([packed[:7], packed[7:]], gzipped=True, max_bytes=10_000) == body


def test_a_body_over_the_limit_is_413_compressed_or_not():
    body = ndjson(*[heartbeat(f"e-{i}") for i in range(50)])
    with pytest.raises(RequestRefused) as plain:
        read_body([body], gzipped=False, max_bytes=len(body) - 1)
    assert plain.value.status_code == 413 and plain.value.body["limit_bytes"] == len(body) - 1
    # A gzip bomb: small on the wire, far over the limit once inflated; refused without inflating it all.
    bomb = gzip.compress(b" " * 5_000_000)
    with pytest.raises(RequestRefused) as inflated:
        read_body([bomb], gzipped=True, max_bytes=100_000)
    assert inflated.value.status_code == 413
    assert read_body([body], gzipped=False, max_bytes=len(body)) == body


@pytest.mark.parametrize("bad", [b"not gzip at all", gzip.compress(b'{"a": 1}')[:-6]])
def test_broken_gzip_is_400(bad):
    with pytest.raises(RequestRefused) as refused:
        read_body([bad], gzipped=True, max_bytes=10_000)
    assert refused.value.status_code == 400


@pytest.mark.parametrize("body", [b"", b"  \n\r\n "])
def test_an_empty_body_is_400(body):
    with pytest.raises(RequestRefused) as refused:
        parse_body(body)
    assert refused.value.status_code == 400


def test_more_events_than_the_batch_limit_is_413():
    items = parse_body(ndjson(*[heartbeat(f"e-{i}") for i in range(5)]))
    check_batch_length(items, 5)
    with pytest.raises(RequestRefused) as refused:
        check_batch_length(items, 4)
    assert refused.value.status_code == 413 and refused.value.body["limit_events"] == 4


# --- parsing ----------------------------------------------------------------------------------------------


def test_a_json_array_gives_one_item_per_element():
    items = parse_body(orjson.dumps([heartbeat("a"), click("b"), 7]))
    assert [i.index for i in items] == [0, 1, 2]
    assert items[0].value["event_id"] == "a" and items[2].value == 7
    assert all(i.error is None for i in items)


def test_a_pretty_printed_array_and_a_single_object_are_read():
    pretty = orjson.dumps([heartbeat("a"), heartbeat("b")], option=orjson.OPT_INDENT_2)
    assert [i.value["event_id"] for i in parse_body(pretty)] == ["a", "b"]
    assert [i.value["event_id"] for i in parse_body(orjson.dumps(heartbeat("solo")))] == ["solo"]


def test_ndjson_lines_are_decoded_one_by_one():
    body = ndjson(heartbeat("a"), b"{not json", b"", heartbeat("b")).replace(b"\n", b"\r\n")
    items = parse_body(body)
    assert [i.index for i in items] == [0, 1, 2]  # the blank line is not an item
    assert items[1].error is not None and "not valid JSON" in items[1].error
    assert items[0].value["event_id"] == "a" and items[2].value["event_id"] == "b"


def test_a_body_that_is_neither_array_nor_ndjson_is_rejected_line_by_line():
    items = parse_body(b"[{\"event_id\": \"a\"},\nthis is not json\n")
    assert len(items) == 2 and all(i.error for i in items)


def test_an_oversize_item_is_rejected_unread_and_truncated():
    huge = b'{"event_id": "x", "pad": "' + b"a" * (MAX_ITEM_BYTES + 10) + b'"}'
    [item] = parse_body(huge + b"\n" + orjson.dumps(heartbeat()))[:1]
    assert item.error is not None and "larger than the limit" in item.error
    assert len(item.raw) == MAX_ITEM_BYTES


# --- validation -------------------------------------------------------------------------------------------


def test_valid_events_go_to_their_topic_keyed_by_account():
    records = plan(ndjson(heartbeat("a"), click("b")))
    assert [(r.topic, r.key, r.accepted) for r in records] == [
        ("t.playback", b"acc-1", True), ("t.interactions", b"acc-2", True)]
    wire = orjson.loads(records[0].value)
    assert wire["event_timestamp"].endswith("Z") and wire["event_type"] == "heartbeat"


@pytest.mark.parametrize(("event", "field"), [
    (heartbeat(position_seconds=-5.0), "position_seconds"),
    (heartbeat(position_seconds="12"), "position_seconds"),
    (heartbeat(account_id=None), "account_id"),
    (heartbeat(event_type="teleport"), "event_type"),
    (heartbeat(schema_version=99), "schema_version"),
    (heartbeat(event_timestamp=format_timestamp(NOW + timedelta(days=3))), "event_timestamp"),
    (heartbeat(event_timestamp=format_timestamp(NOW - timedelta(days=800))), "event_timestamp"),
    (heartbeat(app_version="v" * 500), "app_version"),
    (heartbeat(colour="red"), "colour"),
])
def test_invalid_events_are_dead_lettered_with_a_reason_naming_the_field(event, field):
    [record] = plan(ndjson(event))
    assert not record.accepted and record.topic == "t.dead-letter" and record.field == field
    assert record.reason is not None and record.reason.startswith(f"{field}:")
    letter = orjson.loads(record.value)
    assert letter["stage"] == "collector" and letter["source"] == "http:10.0.0.1"
    assert letter["reason"] == record.reason and letter["field"] == field
    assert letter["received_at"] == format_timestamp(NOW)
    assert orjson.loads(letter["raw_payload"]) == event
    assert record.key == b"http:10.0.0.1"


def test_undecodable_lines_keep_their_raw_bytes_on_the_dead_letter():
    [record] = plan(b"\xff\xfe not utf-8 \n")
    letter = orjson.loads(record.value)
    assert not record.accepted and letter["raw_encoding"] == "base64" and "not valid JSON" in letter["reason"]


def test_the_second_event_with_the_same_id_is_a_duplicate():
    records = plan(ndjson(heartbeat("same"), heartbeat("other"), heartbeat("same", position_seconds=130.0)))
    assert [r.accepted for r in records] == [True, True, False]
    assert records[2].field == "event_id" and "duplicate of item 0" in (records[2].reason or "")
    assert records[2].event_id == "same"


def test_an_invalid_first_copy_does_not_make_the_valid_second_a_duplicate():
    records = plan(ndjson(heartbeat("same", position_seconds=-1.0), heartbeat("same")))
    assert [r.accepted for r in records] == [False, True]


def test_the_heartbeat_endpoint_refuses_other_types():
    from warehouse_models.events import EventType

    records = plan(ndjson(click("c"), heartbeat("h")), only_types=frozenset({EventType.HEARTBEAT}))
    assert [r.accepted for r in records] == [False, True] and records[0].field == "event_type"


# --- the answer -------------------------------------------------------------------------------------------


def test_the_summary_lists_only_what_was_not_accepted():
    records = plan(ndjson(heartbeat("a"), heartbeat("b", position_seconds=-1.0), heartbeat("c")))
    summary = summarize(records, [None, None, "Local: Message timed out"])
    assert summary.status_code == 503
    assert summary.body["accepted"] == 1 and summary.body["rejected"] == 1 and summary.body["retry"] == 1
    assert [(r["index"], r["event_id"], r["status"]) for r in summary.body["results"]] == [
        (1, "b", "rejected"), (2, "c", "retry")]
    assert summary.body["results"][0]["field"] == "position_seconds"
    ok = summarize(records, [None, None, None])
    assert ok.status_code == 200 and ok.body["accepted"] == 2 and len(ok.body["results"]) == 1


# --- the app, with an in-memory producer ----------------------------------------------------------------


class FakeProducer:
    """Acknowledges every record (or fails the topics in ``failing``) and keeps what it was given."""

    def __init__(self, failing: Sequence[str] = ()) -> None:
        self.failing = set(failing)
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def publish(self, records: Sequence[tuple[str, bytes, bytes]]) -> list[str | None]:
        out: list[str | None] = []
        for record in records:
            if record[0] in self.failing:
                out.append("Local: Message timed out")
            else:
                self.sent.append(record)
                out.append(None)
        return out

    def missing_topics(self, names: Sequence[str], *, timeout: float = 2.0) -> list[str]:
        return []


@pytest.fixture
def client_of():
    from starlette.testclient import TestClient

    from serving.collector.app import create_app

    def make(producer: FakeProducer, **settings: Any) -> TestClient:
        config = Settings(kafka_topic_prefix="t", **settings)
        return TestClient(create_app(config, producer=producer))  # type: ignore[arg-type]

    return make


def test_the_app_answers_per_event(client_of):
    producer = FakeProducer()
    client = client_of(producer)
    body = gzip.compress(ndjson(heartbeat("a"), {"event_id": "b"}, heartbeat("a")))
    response = client.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson",
                                                                "content-encoding": "gzip"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 1 and answer["rejected"] == 2 and answer["retry"] == 0
    assert [r["status"] for r in answer["results"]] == ["rejected", "rejected"]
    assert [t for t, _, _ in producer.sent] == ["t.playback", "t.dead-letter", "t.dead-letter"]


def test_the_app_answers_503_with_retry_after_for_what_kafka_did_not_take(client_of):
    client = client_of(FakeProducer(failing=["t.interactions"]))
    response = client.post("/v1/events", json=[heartbeat("a"), click("b")])
    assert response.status_code == 503 and response.headers["retry-after"].isdigit()
    assert response.json()["results"] == [{"index": 1, "event_id": "b", "status": "retry",
                                           "reason": response.json()["results"][0]["reason"]}]


def test_the_app_limits_and_content_types(client_of):
    client = client_of(FakeProducer(), collector_max_body_bytes=2048, collector_max_batch_events=3)
    big = client.post("/v1/events", content=b"x" * 4096, headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["limit_bytes"] == 2048
    many = client.post("/v1/events", json=[heartbeat(f"e-{i}") for i in range(4)])
    assert many.status_code == 413 and many.json()["limit_events"] == 3
    text = client.post("/v1/events", content=b"[]", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    empty = client.post("/v1/events", content=b"", headers={"content-type": "application/json"})
    assert empty.status_code == 400


def test_the_heartbeat_endpoint_takes_one_heartbeat(client_of):
    client = client_of(FakeProducer())
    assert client.post("/v1/heartbeat", json=heartbeat("h")).json()["accepted"] == 1
    assert client.post("/v1/heartbeat", json=[heartbeat("h1"), heartbeat("h2")]).status_code == 413
    assert client.post("/v1/heartbeat", json=click("c")).json()["rejected"] == 1
    assert client.get("/healthz").json()["status"] == "ok"

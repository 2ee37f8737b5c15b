"""Pure request handling of the collector: a request body to items, items to the Kafka records to publish.

Nothing here touches the network, so every rule is tested on a few bytes:

* :func:`check_content_type` and :func:`check_content_encoding` refuse what the collector cannot read (415);
* :func:`read_body` undoes gzip within the body limit (413 over it, 400 for a broken stream);
* :func:`parse_body` splits a JSON array or NDJSON into items, decoding each NDJSON line on its own so one bad
  line is one rejection; a body that is neither gives one rejection per line; an empty body is a 400;
* :func:`plan_batch` validates every item with the shared envelope and turns it into a :class:`Record`: a
  valid event for its topic keyed by account, or a dead-letter record (reason, raw payload, source, receive
  time); the second of two items with the same ``event_id`` is rejected as a duplicate;
* :func:`summarize` joins the records with Kafka's delivery results into the response.

Item indexes count the items the client sent, from 0: array elements, or the non-blank lines of NDJSON.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from warehouse_models.dead_letter import dead_letter_record
from warehouse_models.events import (
    EventType,
    TopicKind,
    kafka_key,
    topic_kind,
    validate_event,
    wire_of_validated,
)
from warehouse_models.topics import Topics

JSON_MEDIA_TYPES = frozenset({"application/json"})
NDJSON_MEDIA_TYPES = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
    "application/jsonlines",
})
ACCEPTED_MEDIA_TYPES = JSON_MEDIA_TYPES | NDJSON_MEDIA_TYPES
ACCEPTED_ENCODINGS = ("identity", "gzip")

MAX_ITEM_BYTES = 64 * 1024
"""Largest single event; a larger item is rejected unread and only its first bytes go to the dead letters.

A valid envelope is a few kilobytes at most (every string field has a length limit), and a dead-letter record
must stay below Kafka's message size limit.
"""

STAGE = "collector"
"""The ``stage`` of the collector's dead-letter records."""

Status = Literal["accepted", "rejected", "retry"]


class RequestRefused(Exception):
    """The request as a whole cannot be handled; ``status_code`` and ``body`` make the HTTP answer."""

    def __init__(self, status_code: int, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body: dict[str, Any] = {"error": message, **detail}


@dataclass(frozen=True, slots=True)
class Item:
    """One event as received: its position, its raw bytes, and its decoded value or why it has none."""

    index: int
    raw: bytes
    value: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """What to publish for one item: the event itself (accepted) or its dead letter (rejected)."""

    index: int
    topic: str
    key: bytes
    value: bytes
    event_id: str | None
    accepted: bool
    reason: str | None = None
    field: str | None = None


# --- the request as a whole ----------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without parameters ("" when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None) -> None:
    """Refuse (415) a body that is not JSON or NDJSON."""
    found = media_type(content_type)
    if found not in ACCEPTED_MEDIA_TYPES:
        raise RequestRefused(415, f"unsupported content type {found or '(none)'!r}; send a JSON array as "
                                  "application/json or NDJSON as application/x-ndjson",
                             supported=sorted(ACCEPTED_MEDIA_TYPES))


def check_content_encoding(content_encoding: str | None) -> bool:
    """True for a gzip body, False for an uncompressed one; refuse (415) any other encoding."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return False
    if codings in (["gzip"], ["x-gzip"]):
        return True
    raise RequestRefused(415, f"unsupported content encoding {content_encoding!r}; send gzip or nothing",
                         supported=list(ACCEPTED_ENCODINGS))


def too_large(limit: int) -> RequestRefused:
    """The 413 for a body over ``limit`` bytes."""
    return RequestRefused(413, f"the body is larger than the limit of {limit} bytes (after decompression); "
                               "send fewer events per request", limit_bytes=limit)


def read_body(chunks: Iterable[bytes], *, gzipped: bool, max_bytes: int) -> bytes:
    """Join the body's chunks, undoing gzip; 413 when the body (compressed or not) exceeds ``max_bytes``."""
    out = bytearray()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise too_large(max_bytes)
        if inflater is None:
            out += chunk
            continue
        out += _inflate(inflater, chunk, max_bytes - len(out), max_bytes)
    if inflater is not None:
        out += _inflate(inflater, b"", max_bytes - len(out), max_bytes, final=True)
        if not inflater.eof and received:
            raise RequestRefused(400, "the gzip stream is truncated")
        if inflater.unused_data.strip(b"\0"):
            raise RequestRefused(400, "the body holds data after the end of its gzip stream; send one gzip member")
    return bytes(out)


def _inflate(inflater: Any, data: bytes, room: int, limit: int, *, final: bool = False) -> bytes:
    try:
        # Ask for one byte more than there is room for: getting it means the body is over the limit,
        # without ever inflating a gzip bomb beyond the limit.
        produced = inflater.decompress(data, room + 1) if not final else inflater.flush(room + 1)
    except zlib.error as exc:
        raise RequestRefused(400, f"the body is not valid gzip ({exc})") from exc
    if len(produced) > room or inflater.unconsumed_tail:
        raise too_large(limit)
    return produced


# --- items -----------------------------------------------------------------------------------------------


def _decode(index: int, raw: bytes) -> Item:
    if len(raw) > MAX_ITEM_BYTES:
        return Item(index, raw[:MAX_ITEM_BYTES], error=f"event is {len(raw)} bytes, larger than the limit of "
                                                       f"{MAX_ITEM_BYTES} bytes (payload truncated)")
    try:
        return Item(index, raw, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        return Item(index, raw, error=f"not valid JSON ({str(exc)[:80]})")


def parse_body(body: bytes) -> list[Item]:
    """Split a JSON array, a single JSON object or NDJSON into items; 400 for an empty body.

    A body that parses as a whole is an array (one item per element) or one event. Anything else is read as
    NDJSON, one item per non-blank line, so a broken line costs that line only.
    """
    stripped = body.strip()
    if not stripped:
        raise RequestRefused(400, "the body is empty; send a JSON array or NDJSON of events")
    if stripped[:1] in (b"[", b"{"):
        try:
            whole = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            whole = None  # not one document: NDJSON (or garbage, rejected line by line)
        else:
            if isinstance(whole, list):
                return [_element(i, value) for i, value in enumerate(whole)]
            return [_decode(0, stripped)]
    items: list[Item] = []
    for line in stripped.split(b"\n"):
        line = line.strip()
        if line:
            items.append(_decode(len(items), line))
    return items


def _element(index: int, value: Any) -> Item:
    raw = orjson.dumps(value)
    if len(raw) > MAX_ITEM_BYTES:
        return _decode(index, raw)
    return Item(index, raw, value)


def check_batch_length(items: Sequence[Item], max_events: int) -> None:
    """Refuse (413) a request with more than ``max_events`` events."""
    if len(items) > max_events:
        raise RequestRefused(413, f"{len(items)} events in one request, more than the limit of {max_events}; "
                                  "split the batch", limit_events=max_events)


# --- validation ------------------------------------------------------------------------------------------


def plan_batch(
    items: Sequence[Item],
    *,
    topics: Topics,
    source: str,
    received_at: datetime,
    only_types: frozenset[EventType] | None = None,
) -> list[Record]:
    """Validate every item and build the record to publish for it, in item order.

    Args:
        items: from :func:`parse_body`.
        topics: the topic layout (valid events go to their kind's topic, the rest to the dead-letter topic).
        source: where the request came from (the client address), recorded on dead letters.
        received_at: the receive time: event times are judged against it and dead letters carry it.
        only_types: when given, events of other types are rejected (the heartbeat endpoint).
    """
    names = {kind: topics.for_kind(kind).name for kind in TopicKind}
    dead_letter_topic = names[TopicKind.DEAD_LETTER]
    source_key = source.encode()
    seen: dict[str, int] = {}
    records: list[Record] = []

    def reject(item: Item, reason: str, field: str | None) -> Record:
        letter = dead_letter_record(item.raw, reason, field=field, stage=STAGE, source=source,
                                    received_at=received_at, parsed=item.value if item.error is None else None)
        return Record(item.index, dead_letter_topic, source_key, orjson.dumps(letter), letter["event_id"],
                      accepted=False, reason=reason, field=field)

    for item in items:
        if item.error is not None:
            records.append(reject(item, item.error, None))
            continue
        checked = validate_event(item.value, now=received_at)
        event = checked.event
        if event is None:
            records.append(reject(item, checked.reason or "invalid event", checked.field))
            continue
        if only_types is not None and event["event_type"] not in only_types:
            allowed = ", ".join(sorted(t.value for t in only_types))
            records.append(reject(item, f"event_type: only {allowed} events are accepted on this endpoint",
                                  "event_type"))
            continue
        event_id: str = event["event_id"]
        first = seen.get(event_id)
        if first is not None:
            records.append(reject(item, f"event_id: duplicate of item {first} in this request", "event_id"))
            continue
        seen[event_id] = item.index
        records.append(Record(item.index, names[topic_kind(event)], kafka_key(event),
                              orjson.dumps(wire_of_validated(item.value, event)),
                              event_id, accepted=True))
    return records


# --- the response ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The answer to one request: HTTP status and JSON body."""

    status_code: int
    body: dict[str, Any]

    @property
    def retry(self) -> int:
        return int(self.body["retry"])


def summarize(records: Sequence[Record], errors: Sequence[str | None]) -> Summary:
    """Join records with their delivery errors (None: acknowledged by Kafka) into the response.

    The status is 200 when every record was acknowledged and 503 when one was not; ``results`` lists only
    the items that were not accepted, so a batch of 1000 good events answers in a few bytes.
    """
    if len(records) != len(errors):
        raise ValueError(f"{len(records)} records but {len(errors)} delivery results")
    accepted = rejected = retry = 0
    results: list[dict[str, Any]] = []
    for record, error in zip(records, errors, strict=True):
        status: Status
        reason: str | None
        field: str | None
        if error is not None:
            status, reason, field = "retry", f"not acknowledged by Kafka ({error}); send it again", None
            retry += 1
        elif record.accepted:
            accepted += 1
            continue
        else:
            status, reason, field = "rejected", record.reason, record.field
            rejected += 1
        entry: dict[str, Any] = {"index": record.index, "event_id": record.event_id, "status": status,
                                 "reason": reason}
        if field is not None:
            entry["field"] = field
        results.append(entry)
    body = {"accepted": accepted, "rejected": rejected, "retry": retry, "results": results}
    return Summary(503 if retry else 200, body)

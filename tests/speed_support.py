"""Helpers the speed-view tests share: hand-made events, a transform run as a stream, writer contexts on Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from speed_layer.query import SinkContext, ViewQuery
from speed_layer.source import events_frame
from warehouse_models.events import format_timestamp
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import SparkSession

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
"""The hand-made events' time zero."""


def epoch(seconds: float) -> int:
    """Epoch seconds of ``T0 + seconds``."""
    return int((T0 + timedelta(seconds=seconds)).timestamp())


def event(event_type: str, user: str, seconds: float, **fields: Any) -> dict[str, Any]:
    """A wire-form event of ``user`` (account ``acc-<user>``) at ``T0 + seconds`` with a fresh id, plus ``fields``."""
    return {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": event_type,
        "event_timestamp": format_timestamp(T0 + timedelta(seconds=seconds)), "account_id": f"acc-{user}",
        "user_id": user, **fields,
    }


def playback(event_type: str, user: str, content: str, seconds: float, **fields: Any) -> dict[str, Any]:
    """A playback event of ``user`` on ``content`` on a TV, in the session ``ses-<user>-<content>``."""
    return event(event_type, user, seconds, device_type="tv", session_id=f"ses-{user}-{content}", content_id=content,
                 **fields)


def interaction(event_type: str, seconds: float, *, rail: str = "top_picks", button: str = "tile",
                content: str | None = "vod-1") -> dict[str, Any]:
    """An interaction of user ``u1`` (account ``acc-1``) on the home page; ``content=None`` names no title."""
    titled = {"content_id": content} if content is not None else {}
    return event(event_type, "u1", seconds, account_id="acc-1", page="home", rail_id=rail, button_id=button,
                 **titled)


def rail_interactions() -> list[dict[str, Any]]:
    """The CTR tests' interactions: top_picks/tile in 12:00 and 12:01 (a click without a title), detail_actions/play."""
    return [
        interaction("impression", 0),
        interaction("impression", 10),
        interaction("impression", 5, content="vod-2"),
        interaction("click", 20),
        interaction("impression", 30, rail="detail_actions", button="play"),
        interaction("impression", 70),
        interaction("click", 75, content=None),
    ]


def clear_prefix(client: redis.Redis, pattern: str) -> None:
    """Delete every key matching ``pattern``."""
    keys = list(client.scan_iter(match=pattern))
    if keys:
        client.delete(*keys)


def sink_context_fixture(query_name: str, batch_id: int = 0) -> Callable[..., Iterator[SinkContext]]:
    """A fixture (assign it to ``ctx``): a writer context on the test's own Redis prefix, cleared after the test,
    with the lean client the speed layer's writers get."""

    @pytest.fixture
    def ctx(redis_service: Settings, isolated: Settings) -> Iterator[SinkContext]:
        client = isolated.redis_client(lean=True)
        try:
            yield SinkContext(settings=isolated, client=client, keys=isolated.keys, query_name=query_name,
                              batch_id=batch_id)
        finally:
            clear_prefix(client, isolated.keys.pattern())
            client.close()

    return ctx


def write_events(spark: SparkSession, query: ViewQuery, ctx: SinkContext, events: list[dict[str, Any]], *,
                 batch_id: int) -> None:
    """Write ``events`` through the view's writer as micro-batch ``batch_id`` (a stateful view's through its
    transform first)."""
    ctx.batch_id = batch_id
    frame = events_frame(spark, events)
    query.write(frame if query.contributions is not None else query.transform(frame, ctx.settings), ctx)


def snapshot(ctx: SinkContext, *, strip: str = "", score: Callable[[float], Any] = float,
             string: Callable[[bytes], Any] = bytes.decode, only: str | None = None) -> dict[str, Any]:
    """Each key under the prefix (minus ``strip``) -> its value as text: dict, set, {member: score}, or string."""
    client: Any = ctx.client  # replies are bytes: the settings' client does not decode them
    out: dict[str, Any] = {}
    for raw in client.scan_iter(match=ctx.keys.pattern()):
        key, kind = raw.decode(), client.type(raw).decode()
        assert only is None or kind == only, key
        value: Any
        if kind == "set":
            value = {m.decode() for m in client.smembers(raw)}
        elif kind == "zset":
            value = {m.decode(): score(s) for m, s in client.zrange(raw, 0, -1, withscores=True)}
        elif kind == "string":
            value = string(client.get(raw))
        else:
            value = {f.decode(): v.decode() for f, v in client.hgetall(raw).items()}
        out[key.removeprefix(strip)] = value
    return out

"""The serving API over a real Redis: keys and scopes, errors, and batch(W) + speed(>= W) at the boundary.

The speed parts are written by the speed layer's own writers (Spark), the batch parts published as the batch
layer publishes; the expected answers are counted here from the event lists, apart from the code under test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from batch_layer.publish.versioned import publish_version
from serving.api.app import create_app
from serving.api.auth import create_key, revoke_key
from speed_layer import ctr as speed_ctr
from speed_layer import engagement as speed_engagement
from speed_layer import resume as speed_resume
from speed_layer import trending as speed_trending
from speed_layer.query import SinkContext
from speed_layer.source import events_frame
from warehouse_models.events import format_timestamp
from warehouse_models.metrics.engagement import daily_field
from warehouse_models.settings import Settings

NOW = datetime.now(timezone.utc)
W = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
"""The batch watermark of these tests: an hour boundary that the speed buckets (3 h) still cover."""


def _event(event_type: str, seconds: float, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"ev-{uuid.uuid4().hex[:12]}", "schema_version": 1, "event_type": event_type,
            "event_timestamp": format_timestamp(W + timedelta(seconds=seconds)), "account_id": "acc-u1",
            "user_id": "u1", **fields}


def _heartbeat(seconds: float, state: str = "playing") -> dict[str, Any]:
    return _event("heartbeat", seconds, device_type="tv", session_id="ses-1", content_id="vod-1",
                  position_seconds=100.0 + seconds, player_state=state)


def _interaction(kind: str, seconds: float) -> dict[str, Any]:
    return _event(kind, seconds, rail_id="r1", button_id="tile", content_id="vod-1")


EVENTS = [_heartbeat(-20), _heartbeat(-15, "paused"), _heartbeat(-10), _interaction("impression", -8),
          _interaction("click", -5), _heartbeat(5), _interaction("impression", 3), _interaction("impression", 4),
          _interaction("click", 7), _heartbeat(15)]
LATE = _heartbeat(-30)
"""Arrives after the batch was published, with an event time before W."""


def _seconds(event: dict[str, Any]) -> float:
    return (datetime.fromisoformat(event["event_timestamp"]) - W).total_seconds()


def truth(events: list[dict[str, Any]], *, before: float | None = None) -> dict[str, int]:
    """Engagement and CTR counted from the events (those before ``W + before`` seconds, when given)."""
    chosen = [e for e in events if before is None or _seconds(e) < before]
    return {
        "watch_seconds": 10 * sum(1 for e in chosen if e["event_type"] == "heartbeat"
                                  and e["player_state"] == "playing"),
        "events": len(chosen),
        "clicks": sum(1 for e in chosen if e["event_type"] == "click"),
        "impressions": sum(1 for e in chosen if e["event_type"] == "impression"),
    }


ENGAGEMENT = ("watch_seconds", "events", "clicks")


def truth_daily(events: list[dict[str, Any]], *, before: float | None = None) -> dict[str, dict[str, int]]:
    """:func:`truth`'s engagement per UTC date of the events (those before ``W + before`` seconds, when given)."""
    dates = sorted({e["event_timestamp"][:10] for e in events})
    return {day: {m: truth([e for e in events if e["event_timestamp"][:10] == day], before=before)[m]
                  for m in ENGAGEMENT} for day in dates}


def _daily(engagement: dict[str, Any]) -> dict[str, dict[str, int]]:
    """An engagement answer's days with events."""
    return {day["date"]: {m: day[m] for m in ENGAGEMENT} for day in engagement["daily"] if any(
        day[m] for m in ENGAGEMENT)}


def _publish(settings: Settings, events: list[dict[str, Any]], *, at: float = 0.0) -> int:
    """Publish batch views as of ``W + at`` holding the events before it, as the batch layer would."""
    keys, counted = settings.keys, truth(events, before=at)
    days = {daily_field(day, m): n for day, values in truth_daily(events, before=at).items()
            for m, n in values.items() if any(values.values())}
    watermark = int((W + timedelta(seconds=at)).timestamp())
    publish_version(settings.redis_client(), keys, {
        "user_totals": lambda v: [(keys.batch_user_totals(v, "u1"),
                                   {**{m: counted[m] for m in ENGAGEMENT}, **days})],
        "ctr": lambda v: [(keys.batch_ctr(v, "r1", "tile"),
                           {"vod-1:impressions": counted["impressions"], "vod-1:clicks": counted["clicks"]})],
    }, watermark=watermark)
    return watermark


_batch_ids = iter(range(1_000_000))


def _speed(spark, settings: Settings, events: list[dict[str, Any]]) -> None:
    """Write the events through the speed layer's engagement, CTR and resume writers."""
    frame = events_frame(spark, events)
    batch_id = next(_batch_ids)
    for view in (speed_engagement.QUERY, speed_ctr.QUERY, speed_resume.QUERY):
        view.write(frame, SinkContext(settings=settings, client=settings.redis_client(), keys=settings.keys,
                                      query_name=f"views/{view.name}", batch_id=batch_id))


@pytest.fixture
def served(redis_service, isolated: Settings) -> Iterator[tuple[TestClient, dict[str, str], Settings]]:
    client = isolated.redis_client()
    keys = {scope: create_key(client, isolated.keys, name=f"{scope}-app", scopes=[scope])
            for scope in ("read", "playback", "admin")}
    try:
        with TestClient(create_app(isolated)) as http:
            yield http, keys, isolated
    finally:
        for key in client.scan_iter(match=isolated.keys.pattern()):
            client.delete(key)
        client.close()


def _get(http: TestClient, key: str, path: str, **params: Any) -> Any:
    return http.get(path, params=params, headers={"X-API-Key": key})


def test_keys_scopes_and_revocation(served):
    http, keys, settings = served
    assert http.get("/v1/freshness").json()["error"]["code"] == "unauthorized"
    assert http.get("/v1/freshness").status_code == 401
    assert _get(http, "rk_not-a-key", "/v1/freshness").status_code == 401
    assert _get(http, keys["read"], "/v1/freshness").status_code == 200
    denied = _get(http, keys["read"], "/v1/alerts")
    assert denied.status_code == 403 and "admin" in denied.json()["error"]["message"]
    assert _get(http, keys["admin"], "/v1/alerts").status_code == 200
    assert _get(http, keys["playback"], "/v1/freshness").status_code == 403
    body = {"account_id": "acc-9", "session_id": "s-1", "device_type": "tv"}
    assert http.post("/v1/playback/authorize", json=body, headers={"X-API-Key": keys["read"]}).status_code == 403
    allowed = http.post("/v1/playback/authorize", json=body, headers={"X-API-Key": keys["playback"]})
    assert allowed.status_code == 200 and allowed.json()["reason"] == "limit_unknown"
    # Redis holds no key in the clear.
    client = settings.redis_client()
    stored = b"".join(b"".join(v for v in client.hgetall(k).values())
                      for k in client.scan_iter(match=settings.keys.pattern("serving")) if client.type(k) == b"hash")
    assert all(key.encode() not in stored for key in keys.values())
    assert revoke_key(client, settings.keys, "read-app")
    with TestClient(create_app(settings)) as fresh:  # a new process; running ones forget within 5 s
        assert _get(fresh, keys["read"], "/v1/freshness").status_code == 401


def test_rate_limit_per_key_answers_429_with_retry_after(served):
    http, _, settings = served
    slow = create_key(settings.redis_client(), settings.keys, name="slow-app", scopes=["read"], rate_per_second=1)
    codes = [_get(http, slow, "/v1/freshness").status_code for _ in range(3)]
    assert codes == [200, 200, 429]  # a burst of twice the rate, then refused
    refused = _get(http, slow, "/v1/freshness")
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1


def test_bad_parameters_are_named_and_unknown_ids_are_404(served):
    http, keys, _ = served
    key = keys["read"]
    answer = _get(http, key, "/v1/users/u1/recent", limit=0)
    assert answer.status_code == 422 and answer.json()["error"]["parameters"] == ["limit"]
    assert _get(http, key, "/v1/users/u*/engagement").json()["error"]["parameters"] == ["user_id"]
    assert _get(http, key, "/v1/qoe/vod-1", device_type="tv").json()["error"]["parameters"] == ["country"]
    assert _get(http, key, "/v1/trending", kind="radio").json()["error"]["parameters"] == ["kind"]
    bad = http.post("/v1/playback/authorize", json={"account_id": "a"}, headers={"X-API-Key": keys["playback"]})
    assert bad.status_code == 422 and bad.json()["error"]["parameters"] == ["device_type", "session_id"]
    for path, params in (("/v1/users/nobody/engagement", {}), ("/v1/users/nobody/resume", {}),
                         ("/v1/content/nothing/stats", {}), ("/v1/ctr/r0/none", {}),
                         ("/v1/qoe/nothing", {"device_type": "tv", "country": "DE"})):
        missing = _get(http, key, path, **params)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found", path
    assert _get(http, keys["admin"], "/v1/accounts/nobody/streams").status_code == 404
    unknown = _get(http, key, "/v2/freshness")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    wrong_method = http.post("/v1/freshness", headers={"X-API-Key": key})
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert "traceback" not in _get(http, key, "/v1/users/u1/recent", limit="x").text.lower()


def test_merged_answers_equal_the_events_counted_at_the_boundary(served, spark):
    http, keys, settings = served
    key = keys["read"]
    watermark = _publish(settings, EVENTS)
    _speed(spark, settings, EVENTS)  # the speed layer saw every event, before and after W

    def answers() -> tuple[dict[str, Any], dict[str, Any]]:
        engagement = _get(http, key, "/v1/users/u1/engagement", window_minutes=180, days=2).json()
        return engagement, _get(http, key, "/v1/ctr/r1/tile").json()

    expected = truth(EVENTS)
    engagement, ctr = answers()
    assert engagement["totals"] == {m: expected[m] for m in ("watch_seconds", "events", "clicks")}
    # W - 30 s .. W + 15 s: within today and yesterday, whatever the hour (W is an hour before the last boundary).
    assert len(engagement["daily"]) == 2 and _daily(engagement) == truth_daily(EVENTS)
    assert (ctr["impressions"], ctr["clicks"]) == (expected["impressions"], expected["clicks"])
    assert ctr["rate"] == pytest.approx(expected["clicks"] / expected["impressions"])
    fresh = engagement["freshness"]
    assert fresh["layers"] == ["batch", "speed"] and fresh["complete"] is True
    assert fresh["speed_lag_seconds"] is None  # no speed query has reported progress here yet
    # The shared speed query's progress row, as its writer leaves it: it finished 1.5 s ago with 3 records unread.
    started = datetime.now(timezone.utc) - timedelta(seconds=2)
    settings.redis_client().hset(settings.keys.speed_progress(settings.speed_query_name("views")), mapping={
        "timestamp": started.isoformat(), "batch_duration_ms": "500", "kafka_lag": "3"})
    fresh = answers()[0]["freshness"]
    assert 1.4 <= fresh["speed_lag_seconds"] < 5 and fresh["speed_kafka_lag"] == 3
    assert datetime.fromisoformat(fresh["as_of"]).timestamp() == watermark
    # The 5-second windows: every event's window, before W too (the speed layer has them all).
    assert sum(w["events"] for w in engagement["windows"]) == len(EVENTS)

    # A late event before W reaches the speed layer after the publication: its window is the batch layer's,
    # so the merged answer counts it once the batch layer has rebuilt that hour and published again.
    _speed(spark, settings, [LATE])
    assert answers()[0]["totals"] == {m: expected[m] for m in ("watch_seconds", "events", "clicks")}
    _publish(settings, [*EVENTS, LATE])
    with_late = truth([*EVENTS, LATE])
    assert answers()[0]["totals"] == {m: with_late[m] for m in ("watch_seconds", "events", "clicks")}

    # Republished again and again while apps read: every answer is whole, never a mix of two versions.
    stop = threading.Event()

    def republish() -> None:
        at = 0.0
        while not stop.is_set():
            # W and W - 1 min (a watermark is on an hour boundary, so on every bucket's and window's): the
            # earlier one leaves every event to the speed part, the other splits them.
            at = -60.0 if at == 0.0 else 0.0
            _publish(settings, [*EVENTS, LATE], at=at)

    publisher = threading.Thread(target=republish)
    publisher.start()
    try:
        seen = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            engagement, ctr = answers()
            seen.add(engagement["freshness"]["as_of"])
            assert engagement["totals"] == {m: with_late[m] for m in ("watch_seconds", "events", "clicks")}
            assert _daily(engagement) == truth_daily([*EVENTS, LATE])
            assert (ctr["impressions"], ctr["clicks"]) == (with_late["impressions"], with_late["clicks"])
    finally:
        stop.set()
        publisher.join(timeout=30)
    assert len(seen) == 2, seen  # both watermarks were read


def test_latest_value_views_and_trending(served, spark):
    http, keys, settings = served
    _speed(spark, settings, EVENTS)
    resume = _get(http, keys["read"], "/v1/users/u1/resume/vod-1").json()
    newest = max((e for e in EVENTS if e["event_type"] == "heartbeat"), key=_seconds)
    assert resume["positions"][0]["position_seconds"] == newest["position_seconds"]
    assert resume["freshness"]["layers"] == ["speed"]
    trending = _get(http, keys["read"], "/v1/trending", kind="vod").json()
    assert trending["kind"] == "vod" and trending["freshness"]["layers"] in (["speed"], ["batch", "speed"])

    # Per country: u2 from DE and u3 from FR on vod-2, u1 (no country) on vod-1.
    watched = [_heartbeat(40) | {"country": "DE", "user_id": "u2", "content_id": "vod-2"},
               _heartbeat(41) | {"country": "FR", "user_id": "u3", "content_id": "vod-2"}]
    frame = events_frame(spark, [*EVENTS, *watched])
    speed_trending.QUERY.write(frame, SinkContext(settings=settings, client=settings.redis_client(),
                                                  keys=settings.keys, query_name="views/trending", batch_id=1))
    every = _get(http, keys["read"], "/v1/trending", kind="vod").json()
    assert {i["content_id"]: i["viewers"] for i in every["items"]} == {"vod-1": 1, "vod-2": 2}
    german = _get(http, keys["read"], "/v1/trending", kind="vod", country="DE").json()
    assert german["country"] == "DE" and [(i["content_id"], i["viewers"]) for i in german["items"]] == [("vod-2", 1)]
    assert _get(http, keys["read"], "/v1/trending", kind="vod", country="IT").json()["items"] == []
    bad = _get(http, keys["read"], "/v1/trending", kind="vod", country="de")
    assert bad.status_code == 422 and "country" in bad.text


def test_redis_stopped_and_restarted_during_reads(service_settings: Settings, tmp_path):
    """A real API process over its own Redis: 503 with Retry-After while Redis is down, the same answer after."""
    import httpx

    from infra import redis as embedded_redis
    from infra.process import free_port
    from serving.api.service import API

    settings = service_settings.model_copy(update={
        "redis_url": f"redis://127.0.0.1:{free_port()}/0", "serving_port": free_port(),
        "data_dir": tmp_path / "data", "redis_key_prefix": "outage"})
    embedded_redis.start(settings)
    try:
        API.start(settings)
        key = create_key(settings.redis_client(), settings.keys, name="tv-app", scopes=["read", "playback"])
        _publish(settings, EVENTS)
        headers = {"X-API-Key": key}
        url = API.url(settings, "/v1/users/u1/engagement")
        before = httpx.get(url, headers=headers, timeout=10)
        assert before.status_code == 200
        embedded_redis.stop(settings)
        for path in ("/v1/users/u1/engagement", "/v1/ctr/r1/tile", "/healthz"):
            down = httpx.get(API.url(settings, path), headers=headers, timeout=10)
            assert down.status_code == 503, (path, down.text)
            assert down.json()["error"]["code"] == "unavailable" and down.headers["Retry-After"] == "2"
        refused = httpx.post(API.url(settings, "/v1/playback/authorize"), headers=headers, timeout=10,
                             json={"account_id": "acc-1", "session_id": "s", "device_type": "tv"})
        assert refused.status_code == 503  # never "allowed" without Redis deciding
        embedded_redis.start(settings)  # the data is back from its append-only file
        deadline = time.monotonic() + 20
        while (after := httpx.get(url, headers=headers, timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, after.text
            time.sleep(0.2)
        assert after.json()["totals"] == before.json()["totals"]
    finally:
        API.stop(settings)
        embedded_redis.stop(settings)


def test_hot_routes_answer_as_the_declared_routes(served):
    """The resume read and authorize are answered by the hot-route layer: every case the declared routes judge
    (a bad id or body, no key, a key without the scope, over its rate) answers as they do, and each request takes
    one token of the key's rate whichever layer answers it."""
    http, keys, settings = served
    key, playback = keys["read"], keys["playback"]
    assert http.get("/v1/users/u1/resume/vod-1").status_code == 401
    assert _get(http, key, "/v1/users/u*/resume/vod-1").json()["error"]["parameters"] == ["user_id"]
    assert _get(http, key, f"/v1/users/{'u' * 129}/resume/vod-1").json()["error"]["parameters"] == ["user_id"]
    missing = _get(http, key, "/v1/users/nobody/resume/vod-1")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert _get(http, playback, "/v1/users/u1/resume/vod-1").status_code == 403
    body = {"account_id": "acc-9", "session_id": "s-1", "device_type": "tv"}
    as_text = http.post("/v1/playback/authorize", content=orjson.dumps(body),
                        headers={"X-API-Key": playback, "Content-Type": "text/plain"})
    assert as_text.status_code == 422
    long_id = http.post("/v1/playback/authorize", json={**body, "session_id": "s" * 200},
                        headers={"X-API-Key": playback})
    assert long_id.status_code == 422 and long_id.json()["error"]["parameters"] == ["session_id"]

    # A key of one request a second: a burst of two, whether a request is well-formed or not.
    slow = create_key(settings.redis_client(), settings.keys, name="slow-player", scopes=["playback"],
                      rate_per_second=1)
    bad = http.post("/v1/playback/authorize", json={"account_id": "a"}, headers={"X-API-Key": slow})
    good = http.post("/v1/playback/authorize", json=body, headers={"X-API-Key": slow})
    over = http.post("/v1/playback/authorize", json=body, headers={"X-API-Key": slow})
    assert (bad.status_code, good.status_code, over.status_code) == (422, 200, 429)
    assert over.json()["error"]["code"] == "rate_limited" and int(over.headers["Retry-After"]) >= 1

    # Requests the declared routes must judge reach them: a trailing newline in an id, a media type that is not
    # JSON, the first of two key headers (Starlette's reading).
    assert _get(http, key, "/v1/users/u1/resume/vod-1%0A").status_code == 422
    as_jsonx = http.post("/v1/playback/authorize", content=orjson.dumps(body),
                         headers={"X-API-Key": playback, "Content-Type": "application/jsonx"})
    assert as_jsonx.status_code == 422
    two_keys = http.get("/v1/users/u1/resume/vod-1", headers=[("X-API-Key", playback), ("X-API-Key", key)])
    assert two_keys.status_code == 403

    # Timed under the route's template, like every declared route.
    metrics = http.get("/metrics").text
    assert 'route="/v1/users/{user_id}/resume/{content_id}",status="404"' in metrics
    assert 'route="/v1/playback/authorize",status="200"' in metrics


def test_well_formed_hot_requests_never_reach_the_declared_routes(redis_service, isolated: Settings):
    """The hot layer answers the resume read, authorize, engagement, trending and CTR itself: with the declared
    routes' handlers made to fail, well-formed requests still answer, and a malformed one (a bad id, a query
    parameter out of range, unknown or given twice) reaches the declared route."""
    from fastapi.routing import APIRoute

    client = isolated.redis_client()
    read = create_key(client, isolated.keys, name="read-app", scopes=["read"])
    playback = create_key(client, isolated.keys, name="player", scopes=["playback"])
    app = create_app(isolated)
    reached: list[str] = []
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path in ("/v1/users/{user_id}/resume/{content_id}",
                                                          "/v1/playback/authorize", "/v1/users/{user_id}/engagement",
                                                          "/v1/trending", "/v1/ctr/{rail_id}/{button_id}"):
            async def declared(scope: Any, receive: Any, send: Any, path: str = route.path) -> None:
                reached.append(path)
                raise RuntimeError("the declared route was reached")
            route.app = declared
    try:
        with TestClient(app, raise_server_exceptions=False) as http:
            assert _get(http, read, "/v1/users/nobody/resume/vod-1").status_code == 404
            decided = http.post("/v1/playback/authorize", json={"account_id": "acc-9", "session_id": "s-1",
                                                                 "device_type": "tv"}, headers={"X-API-Key": playback})
            assert decided.status_code == 200 and decided.json()["reason"] == "limit_unknown"
            assert _get(http, read, "/v1/users/nobody/engagement").status_code == 404
            assert _get(http, read, "/v1/users/nobody/engagement", window_minutes=180, days=3).status_code == 404
            assert _get(http, read, "/v1/trending").json()["items"] == []
            ranked = _get(http, read, "/v1/trending", kind="live", limit=3, country="DE").json()
            assert (ranked["kind"], ranked["country"], ranked["items"]) == ("live", "DE", [])
            assert _get(http, read, "/v1/ctr/r0/none").status_code == 404
            assert reached == []
            assert _get(http, read, "/v1/users/u*/resume/vod-1").status_code == 500  # handed on: the failing route
            assert reached == ["/v1/users/{user_id}/resume/{content_id}"]
            handed_on = [("/v1/users/u1/engagement?window_minutes=0", "/v1/users/{user_id}/engagement"),
                         ("/v1/users/u1/engagement?days=2&days=3", "/v1/users/{user_id}/engagement"),
                         ("/v1/users/u1/engagement?window_minutes=1e2", "/v1/users/{user_id}/engagement"),
                         ("/v1/trending?kind=radio", "/v1/trending"),
                         ("/v1/trending?country=de", "/v1/trending"),
                         ("/v1/trending?limit=5&page=2", "/v1/trending"),
                         ("/v1/ctr/r0/none?x=1", "/v1/ctr/{rail_id}/{button_id}")]
            for url, route_path in handed_on:
                reached.clear()
                assert http.get(url, headers={"X-API-Key": read}).status_code == 500, url
                assert reached == [route_path], url
    finally:
        for name in client.scan_iter(match=isolated.keys.pattern()):
            client.delete(name)
        client.close()

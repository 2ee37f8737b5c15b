"""Recent searches writer against the real Redis: normalised queries, the newest RECENT_SEARCHES_MAX per user,
whatever the batches, and a replay changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from serving.views.speed import recent_searches
from simulator.sessions import epoch_ms
from speed_layer.searches import QUERY
from tests.speed_support import sink_context_fixture, snapshot, write_events
from warehouse_models.events import format_timestamp
from warehouse_models.redis_keys import RECENT_SEARCHES_MAX, RECENT_SEARCHES_TTL_SECONDS
from warehouse_models.redis_plan import run

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = epoch_ms(START)


def _search(n: int, seconds: int, query: str, *, user: str = "usr-1") -> dict[str, Any]:
    return {"event_id": f"s-{n}", "schema_version": 1, "event_type": "search",
            "event_timestamp": format_timestamp(START + timedelta(seconds=seconds)), "account_id": "acc-1",
            "user_id": user, "search_query": query, "results_shown": ["vod-1"]}


EVENTS = [
    *[_search(i, i, f"query {i}") for i in range(RECENT_SEARCHES_MAX + 3)],
    _search(100, 200, "  Space   OPERA "),
    _search(101, 100, "space opera"),  # older, same normalised query
    _search(102, 7, "heist", user="usr-2"),
    _search(104, 3, "\tHeist \n", user="usr-2"),  # older, the same once normalised
    _search(105, 9, " \t ", user="usr-2"),  # only whitespace: not a search
    {**_search(103, 8, "ignored", user="usr-2"), "event_type": "click", "search_query": None, "results_shown": None,
     "rail_id": "r", "button_id": "tile", "content_id": "vod-1"},
]

ctx = sink_context_fixture(QUERY.name)


def test_newest_normalised_searches_kept_and_a_replay_changes_nothing(spark, ctx):
    write_events(spark, QUERY, ctx, EVENTS[:7], batch_id=0)
    write_events(spark, QUERY, ctx, EVENTS[7:], batch_id=1)
    write_events(spark, QUERY, ctx, EVENTS, batch_id=1)
    got = snapshot(ctx, strip=ctx.keys.recent_searches(""), score=int)
    newest = {f"query {i}": T0 + 1000 * i for i in range(RECENT_SEARCHES_MAX + 3)}
    newest["space opera"] = T0 + 200_000
    keep = dict(sorted(newest.items(), key=lambda kv: kv[1])[-RECENT_SEARCHES_MAX:])
    assert got == {"usr-1": keep, "usr-2": {"heist": T0 + 7000}}
    assert 0 < ctx.client.ttl(ctx.keys.recent_searches("usr-1")) <= RECENT_SEARCHES_TTL_SECONDS
    assert run(ctx.client, recent_searches(ctx.keys, "usr-1", 2)) == [
        ("space opera", START + timedelta(seconds=200)), (f"query {RECENT_SEARCHES_MAX + 2}",
                                                         START + timedelta(seconds=RECENT_SEARCHES_MAX + 2))]

"""Release notifications through the speed layer's writer into the real Redis, from a published model's tastes,
and the API's feed.

A model is published for a small simulated world (its planted favourite genres are the truth to judge against).
New horror titles upserted into the catalog notify users: three in four of those notified have horror among their
planted favourites, at least half the horror fans are notified, nobody gets more than ``notify_max_per_day`` in a day, a
replayed batch adds nothing, and an old title coming back in the catalog notifies nobody.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from speed_layer.releases import QUERY
from tests.speed_support import sink_context_fixture, write_events
from warehouse_models.events import format_timestamp

ctx = sink_context_fixture(QUERY.name)

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _upsert(n: int, content_id: str, released: date, genre: str = "horror") -> dict[str, Any]:
    return {"event_id": f"cat-{n}", "schema_version": 1, "event_type": "content_upsert",
            "event_timestamp": format_timestamp(NOW + timedelta(seconds=n)), "content_id": content_id,
            "content_title": f"Night {n}", "content_type": "vod", "genre_primary": genre,
            "release_date": released.isoformat(), "duration_minutes": 95, "description": "A cabin, a curse."}


@pytest.mark.timeout(300)
def test_a_release_notifies_the_matching_users_within_the_daily_cap(spark, ctx, tmp_path):
    from batch_layer.models.job import run_daily
    from batch_layer.models.train import TrainingData, UserInfo
    from serving.views.service import Views
    from simulator.interactions import taste_interactions
    from simulator.world import build_world, content_upsert
    from warehouse_models.recommendations import segment_of
    from warehouse_models.redis_plan import run

    world = build_world(seed=4, users=800, titles=150, channels=1)
    day = NOW.date() - timedelta(days=1)
    frame = pd.DataFrame(taste_interactions(world, start=day - timedelta(days=5), days=6, watches_per_user=12))
    catalog = [content_upsert(c, event_id="e", at=NOW) for c in world.titles]
    users = {u.user_id: UserInfo(segment_of(u.country, u.device.device_type)) for u in world.users}
    settings = ctx.settings.model_copy(update={"models_dir": tmp_path / "models",
                                               "delta_root": str(tmp_path / "delta")})
    ctx.settings = settings
    assert run_daily(settings, day=day, data=TrainingData(frame, catalog, users, "", ""),
                     progress=lambda _: None).published
    client, keys = ctx.client, settings.keys

    def feeds() -> dict[str, list[str]]:
        return {u.user_id: [m.decode() for m in client.zrange(keys.notifications(u.user_id), 0, -1)]
                for u in world.users}

    write_events(spark, QUERY, ctx, [_upsert(1, "new-1", NOW.date()), _upsert(2, "old-1", date(1999, 5, 1))],
                 batch_id=0)
    notified = {u for u, items in feeds().items() if "new-1" in items}
    fans = {u.user_id for u in world.users if "horror" in u.favourite_genres and u.user_id in set(frame["user_id"])}
    # Against the planted favourites (not the model's own affinities): mostly fans, and most fans.
    assert notified and len(notified & fans) / len(notified) >= 0.75, "notified users who do not like horror"
    assert len(notified & fans) / len(fans) >= 0.5, "most horror fans were not notified"
    assert not any("old-1" in items for items in feeds().values())

    before = feeds()
    write_events(spark, QUERY, ctx, [_upsert(1, "new-1", NOW.date())], batch_id=0)  # a replay
    assert feeds() == before
    write_events(spark, QUERY, ctx, [_upsert(3 + i, f"new-{2 + i}", NOW.date()) for i in range(3)], batch_id=1)
    after = feeds()
    assert max(len(items) for items in after.values()) == settings.notify_max_per_day
    assert sum("new-4" in items for items in after.values()) < len(notified)  # the cap left some out

    fan = next(iter(notified))
    answer = run(client, Views(settings).notifications(fan, limit=10)).data
    assert [i["content_id"] for i in answer["items"]] == [m.decode() for m in
                                                         client.zrange(keys.notifications(fan), 0, -1, desc=True)]
    assert answer["items"][-1]["genres"] == ["horror"] and answer["items"][-1]["title"] == "Night 1"

"""User x title interactions drawn straight from the world's taste structure, without simulating sessions.

Training a recommender on a month of 100,000 users through Kafka and the warehouse would take hours here; this
draws what those sessions would have added up to, with the same pickers as :mod:`simulator.sessions`: each
watch picks a title with :meth:`~simulator.world.World.pick_title` (a favourite genre 80 % of the time, by
popularity), on a day of the range, for some minutes of the title and a completion. The rows have the shape
gold gives the trainer (``batch_layer.models.matrix.INTERACTION_COLUMNS``), one per user, title and day.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from simulator.world import World


def taste_interactions(world: World, *, start: date, days: int, watches_per_user: float,
                       seed: int = 7, taste_share: float = 0.8) -> dict[str, list[Any]]:
    """Columns of about ``watches_per_user x users`` watches spread over ``days`` days from ``start``.

    Users watch a Poisson-like number of titles around the mean (at least one), so some users are light and a
    few heavy; repeated picks of a title on one day merge into one row.
    """
    rng = random.Random(f"reelytics-interactions:{seed}")
    rows: dict[tuple[str, str, int], list[float]] = {}
    for user in world.users:
        n = max(1, round(rng.expovariate(1.0 / watches_per_user)))
        for _ in range(n):
            title = world.pick_title(user, rng, taste_share=taste_share)
            day = rng.randrange(days)
            length = float((title.duration_minutes or 60) * 60)
            completion = min(1.0, rng.betavariate(2.0, 1.2))
            key = (user.user_id, title.content_id, day)
            seen = rows.get(key)
            watched = length * completion
            if seen is None:
                rows[key] = [watched, completion * 100.0]
            else:
                seen[0] += watched
                seen[1] = max(seen[1], completion * 100.0)
    out: dict[str, list[Any]] = {"user_id": [], "content_id": [], "event_date": [], "watch_seconds": [],
                                 "completion_pct": []}
    dates = [start + timedelta(days=d) for d in range(days)]
    for (user_id, content_id, day), (watched, completion) in rows.items():
        out["user_id"].append(user_id)
        out["content_id"].append(content_id)
        out["event_date"].append(dates[day])
        out["watch_seconds"].append(watched)
        out["completion_pct"].append(completion)
    return out

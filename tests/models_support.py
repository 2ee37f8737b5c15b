"""Gold tables for the recommendation tests, written by deltalake (no JVM) from the simulator's taste interactions.

Each interaction (a user, a VOD title, a day) becomes one heartbeat fact carrying its watch seconds and, when the
view ended, a view_end fact carrying its completion: what the trainer's query sums and maxes. The dimensions are
the simulator's catalog and profiles.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pyarrow as pa

from simulator.interactions import taste_interactions
from simulator.world import World, content_upsert, user_upsert
from warehouse_models.settings import Settings
from warehouse_models.tables import DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def taste_gold(world: World, *, end_day: date, days: int, watches_per_user: float,
               seed: int = 7) -> tuple[dict[str, pa.Table], dict[str, list[Any]]]:
    """The gold tables and the interactions they were made from (columns)."""
    start = end_day - timedelta(days=days - 1)
    columns = taste_interactions(world, start=start, days=days, watches_per_user=watches_per_user, seed=seed)
    users = world.users_by_id
    facts: list[dict[str, Any]] = []
    for i, (user_id, content_id, day, watched, completion) in enumerate(zip(
            columns["user_id"], columns["content_id"], columns["event_date"], columns["watch_seconds"],
            columns["completion_pct"], strict=True)):
        user = users[user_id]
        at = datetime.combine(day, time(12), tzinfo=timezone.utc) + timedelta(seconds=i % 3600)
        base = {"user_id": user_id, "account_id": user.account_id, "content_id": content_id, "session_id": f"s-{i}",
                "device_type": user.device.device_type, "device_id": user.device.device_id, "country": user.country,
                "is_live": False, "event_date": day, "created_at": at}
        facts.append({**base, "event_id": f"hb-{i}", "event_type": "heartbeat", "event_timestamp": at,
                      "player_state": "playing", "watch_seconds": watched})
        facts.append({**base, "event_id": f"ve-{i}", "event_type": "view_end", "event_timestamp": at,
                      "watch_seconds": 0.0, "session_watch_seconds": watched, "completion_pct": completion})
    content = []
    for c in world.content:
        row = content_upsert(c, event_id="e", at=T0)
        content.append({k: row.get(k) for k in DIM_CONTENT.column_names if k in row}
                       | {"release_date": date.fromisoformat(row["release_date"]), "updated_at": T0})
    profiles = []
    accounts = world.accounts_by_id
    for u in world.users:
        row = user_upsert(u, accounts[u.account_id], event_id="e", at=T0)
        profiles.append({k: row.get(k) for k in DIM_USERS.column_names if k in row}
                        | {"user_key": f"{u.user_id}@1", "join_date": date.fromisoformat(row["join_date"]),
                           "valid_from": T0, "valid_to": None, "is_current": True})
    tables = {
        FACT_STREAM_EVENTS.name: pa.Table.from_pylist(facts, schema=FACT_STREAM_EVENTS.arrow_schema()),
        DIM_CONTENT.name: pa.Table.from_pylist(content, schema=DIM_CONTENT.arrow_schema()),
        DIM_USERS.name: pa.Table.from_pylist(profiles, schema=DIM_USERS.arrow_schema()),
    }
    return tables, columns


def write_gold(settings: Settings, tables: dict[str, pa.Table]) -> None:
    from deltalake import write_deltalake

    for spec in (FACT_STREAM_EVENTS, DIM_CONTENT, DIM_USERS):
        write_deltalake(spec.path(settings.delta_root_uri), tables[spec.name], mode="overwrite",
                        partition_by=list(spec.partition_by) or None)

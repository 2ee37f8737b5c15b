"""Gold transformations on small hand-made frames (local Spark, no Delta).

The Spark side (local SparkSession, no services) of the contract stated in ``tests/unit/test_gold.py``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from batch_layer.gold.dim_content import dim_content
from batch_layer.gold.dim_users import dim_users, user_key
from batch_layer.gold.fact_stream_events import fact_stream_events
from tests.unit.test_gold import T0
from warehouse_models.tables import BRONZE_CATALOG, DIM_CONTENT, DIM_USERS, FACT_STREAM_EVENTS, SILVER_EVENTS


def _naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _frame(spark, spec, rows: list[dict[str, Any]]):
    names = spec.column_names
    return spark.createDataFrame([tuple(r.get(c) for c in names) for r in rows],
                                 spec.spark_ddl().replace(" NOT NULL", ""))


def _silver(event_id: str, event_type: str, at: datetime, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_hour": _naive(at.replace(minute=0, second=0)), "event_date": at.date(), "event_id": event_id,
        "schema_version": 1, "event_type": event_type, "event_timestamp": _naive(at), "account_id": "a1",
        "user_id": "u1", "device_id": "d1", "device_type": "tv", "country": "SE", "session_id": "s1",
        "content_id": "c1", "is_live": False, "kafka_topic": "t.playback", "kafka_partition": 0,
        "kafka_offset": 1, "kafka_timestamp": _naive(at + timedelta(seconds=1)), "is_late": False,
    }
    row.update(fields)
    return row


def _catalog(event_id: str, event_type: str, at: datetime, *, offset: int = 0, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kafka_topic": "t.catalog", "kafka_partition": 0, "kafka_offset": offset,
        "kafka_timestamp": _naive(at + timedelta(seconds=1)), "raw_value": "{}", "ingest_date": at.date(),
        "ingested_at": _naive(at + timedelta(minutes=1)), "event_id": event_id, "schema_version": 1,
        "event_type": event_type, "event_timestamp": _naive(at),
    }
    row.update(fields)
    return row


def _rows(df, *columns: str) -> list[tuple]:
    return sorted(tuple(row[c] for c in columns) for row in df.select(*columns).collect())


def test_fact_rows_carry_the_derived_measures(spark):
    silver = _frame(spark, SILVER_EVENTS, [
        _silver("e1", "first_frame", T0, startup_ms=700, bitrate_kbps=3000, quality_level="720p"),
        _silver("e2", "heartbeat", T0 + timedelta(seconds=5), player_state="playing", bitrate_kbps=3000),
        _silver("e3", "heartbeat", T0 + timedelta(seconds=15), player_state="buffering", is_late=True),
        _silver("e4", "heartbeat", T0 + timedelta(seconds=25), player_state="paused"),
        _silver("e5", "buffer_end", T0 + timedelta(seconds=17), stall_ms=2500),
        _silver("e6", "view_end", T0 + timedelta(seconds=25), watch_seconds=10.0, completion_pct=1.5,
                end_reason="explicit_end", kafka_topic="t.derived"),
        _silver("e7", "click", T0, session_id=None, page="home", rail_id="top", button_id="tile", slot=2),
    ])

    out = fact_stream_events(silver)

    assert out.columns == FACT_STREAM_EVENTS.column_names
    d0, d1 = date(2026, 1, 5), date(2026, 1, 6)
    columns = ("event_id", "event_date", "watch_seconds", "session_watch_seconds", "is_buffering", "startup_ms",
               "stall_ms", "rail_id", "end_reason", "is_late", "created_at")
    assert _rows(out, *columns) == [
        ("e1", d0, 0.0, None, False, 700, None, None, None, False, _naive(T0 + timedelta(seconds=1))),
        ("e2", d0, 10.0, None, False, None, None, None, None, False, _naive(T0 + timedelta(seconds=6))),
        ("e3", d1, 0.0, None, True, None, None, None, None, True, _naive(T0 + timedelta(seconds=16))),
        ("e4", d1, 0.0, None, False, None, None, None, None, False, _naive(T0 + timedelta(seconds=26))),
        ("e5", d1, 0.0, None, False, None, 2500, None, None, False, _naive(T0 + timedelta(seconds=18))),
        ("e6", d1, 0.0, 10.0, False, None, None, None, "explicit_end", False, _naive(T0 + timedelta(seconds=26))),
        ("e7", d0, 0.0, None, False, None, None, "top", None, False, _naive(T0 + timedelta(seconds=1))),
    ]


def test_dim_content_keeps_the_newest_record_by_event_time(spark):
    catalog = _frame(spark, BRONZE_CATALOG, [
        _catalog("k1", "content_upsert", T0, offset=5, content_id="c1", content_title="Old", content_type="vod",
                 duration_minutes=90, cast_members=["A"]),
        _catalog("k2", "content_upsert", T0 + timedelta(hours=1), offset=1, content_id="c1", content_title="New",
                 content_type="vod", duration_minutes=95, cast_members=["A", "B"]),
        _catalog("k3", "content_upsert", T0, offset=2, content_id="c2", content_title="Live", content_type="live"),
        _catalog("k4", "content_upsert", T0 + timedelta(hours=2), offset=3, content_id="c2", content_title="Bad",
                 parse_error="content_type: 'x' is not one of vod, live"),
        _catalog("k5", "user_upsert", T0, offset=4, user_id="u1"),
    ])

    out = dim_content(catalog)

    assert out.columns == DIM_CONTENT.column_names
    assert _rows(out, "content_id", "content_title", "content_type", "duration_minutes", "cast_members",
                 "updated_at") == [
        ("c1", "New", "vod", 95, ["A", "B"], _naive(T0 + timedelta(hours=1))),
        ("c2", "Live", "live", None, None, _naive(T0)),
    ]


def _user(event_id: str, at: datetime, *, offset: int, user_id: str = "u1", plan: str = "basic",
          streams: int = 1, name: str = "Ann") -> dict[str, Any]:
    return _catalog(event_id, "user_upsert", at, offset=offset, user_id=user_id, account_id="a1", user_name=name,
                    subscription_type=plan, max_streams=streams, join_date=date(2020, 1, 1),
                    preferences=["drama"])


def test_dim_users_keeps_every_version_of_a_user(spark):
    t1, t2, t3 = T0 + timedelta(days=1), T0 + timedelta(days=2), T0 + timedelta(days=3)
    catalog = _frame(spark, BRONZE_CATALOG, [
        _user("r1", T0, offset=1),
        _user("r1", T0, offset=9),                                    # the same record again: one copy
        _user("r2", t1, offset=2),                                    # nothing changed: no new version
        _user("r3", t2, offset=3, plan="premium", streams=4),         # plan change: a new version
        _user("r4", t3, offset=4, plan="premium", streams=4, name="Anna"),
        _user("r5", t1, offset=5, user_id="u2", plan="standard", streams=2),
        _user("r6", t1, offset=6, user_id="u2", plan="premium", streams=4),  # same instant: later in Kafka wins
    ])

    out = dim_users(catalog)

    assert out.columns == DIM_USERS.column_names
    columns = ("user_key", "user_id", "user_name", "subscription_type", "max_streams", "valid_from", "valid_to",
               "is_current")
    assert _rows(out, *columns) == sorted([
        (user_key("u1", T0), "u1", "Ann", "basic", 1, _naive(T0), _naive(t2), False),
        (user_key("u1", t2), "u1", "Ann", "premium", 4, _naive(t2), _naive(t3), False),
        (user_key("u1", t3), "u1", "Anna", "premium", 4, _naive(t3), None, True),
        (user_key("u2", t1), "u2", "Ann", "premium", 4, _naive(t1), None, True),
    ])
    assert user_key("u1", T0) == user_key("u1", T0.astimezone(timezone(timedelta(hours=2))))
    assert len({user_key("u1", T0), user_key("u1", t2), user_key("u2", T0)}) == 3

"""The silver job's session rows: an hour built from its own bronze rows and the session rows of its neighbours
gives the same silver as one build of the whole day from all its bronze rows, whatever the order of the builds.

A generated day (local Spark and Delta under a temporary directory, no other service): sessions of 10 minutes to
three hours that cross hour boundaries, events slimmed down by a client (no device, country or live flag) whose
values appear only in a later hour, a session that never names its country, re-sent copies (the first copy Kafka
got is slimmed, the later one is whole), events without a session, and a late event that carries an earlier value
than any other event of its session.
"""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from batch_layer.silver.job import build_silver, hours_between
from batch_layer.silver.transform import silver_events
from warehouse_models.tables import (
    BRONZE_INTERACTIONS,
    BRONZE_PLAYBACK,
    SILVER_EVENTS,
    SILVER_SESSION_HOURS,
)

START = datetime(2026, 3, 2, 6, tzinfo=timezone.utc)
HOURS = 4
SLIMMED = ("device_id", "country", "is_live")


def _naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _row(event_id: str, at: datetime, offset: int, *, received: datetime | None = None,
         **fields: Any) -> dict[str, Any]:
    got = received or at + timedelta(seconds=2)
    row: dict[str, Any] = dict.fromkeys(BRONZE_PLAYBACK.column_names)
    row.update({
        "kafka_topic": "t.playback", "kafka_partition": 0, "kafka_offset": offset, "kafka_timestamp": _naive(got),
        "kafka_key": "a1", "raw_value": "{}", "ingest_date": got.date(), "ingested_at": _naive(got),
        "event_id": event_id, "schema_version": 1, "event_type": "heartbeat", "event_timestamp": _naive(at),
        "player_state": "playing", "position_seconds": 1.0,
    })
    row.update(fields)
    return row


def generated_day() -> list[dict[str, Any]]:
    """The bronze playback rows of the day (see the module's docstring)."""
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    offset = 0

    def add(event_id: str, at: datetime, **fields: Any) -> None:
        nonlocal offset
        offset += 1
        rows.append(_row(event_id, at, offset, **fields))

    for n in range(40):
        start = START + timedelta(minutes=rng.randrange(0, HOURS * 60 - 20))
        length = timedelta(minutes=rng.choice((10, 35, 70, 150, 180)))
        identity = {"session_id": f"s{n}", "account_id": f"a{n % 7}", "user_id": f"u{n % 11}",
                    "content_id": f"c{n % 5}", "device_id": f"d{n}", "device_type": "tv",
                    "country": rng.choice(("SE", "NO", "DE")), "is_live": n % 4 == 0}
        at, k = start, 0
        first_hour = start.replace(minute=0, second=0, microsecond=0)
        while at < min(start + length, START + timedelta(hours=HOURS)):
            fields = dict(identity)
            if n % 3 == 0 and at < first_hour + timedelta(hours=1):
                fields.update(dict.fromkeys(SLIMMED))  # the session's first hour is slimmed down
            if n == 5:
                fields["country"] = None  # never named
            add(f"e{n}-{k}", at, **fields)
            if n % 5 == 1 and k == 2:  # re-sent: the first copy is slimmed, the later one whole
                rows[-1].update(dict.fromkeys(SLIMMED))
                add(f"e{n}-{k}", at, **identity)
            at += timedelta(minutes=rng.choice((4, 5, 6)))
            k += 1
        if n % 6 == 2:  # reached Kafka three hours late, with the session's earliest time and another device
            late_at = start - timedelta(seconds=30)
            add(f"e{n}-late", late_at, received=late_at + timedelta(hours=3), event_type="play_request",
                player_state=None, **{**identity, "device_id": f"late-d{n}"})
    for n in range(15):  # interactions: no session
        at = START + timedelta(minutes=rng.randrange(0, HOURS * 60))
        add(f"i{n}", at, event_type="impression", player_state=None, position_seconds=None, account_id="a1",
            user_id="u1", content_id=f"c{n % 5}", device_type="tv", country="SE", page="home", rail_id="top",
            button_id="tile", slot=n % 4)
    return rows


def _first_copies(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per event id: the copy Kafka got first (computed here apart from the code under test)."""
    kept: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["kafka_timestamp"], r["kafka_topic"], r["kafka_offset"])):
        kept.setdefault(row["event_id"], row)
    return list(kept.values())


def _hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _frame(spark, rows: list[dict[str, Any]]):
    return spark.createDataFrame([tuple(r[c] for c in BRONZE_PLAYBACK.column_names) for r in rows],
                                 BRONZE_PLAYBACK.spark_ddl().replace(" NOT NULL", ""))


@pytest.fixture(scope="module")
def day(spark, service_settings, tmp_path_factory):
    """A bronze Delta root holding the day; its rows."""
    root = tmp_path_factory.mktemp("silver-sessions")
    settings = service_settings.model_copy(update={"delta_root": str(root / "delta")})
    rows = generated_day()
    bronze = _frame(spark, rows)
    bronze.write.format("delta").partitionBy("ingest_date").save(BRONZE_PLAYBACK.path(settings.delta_root_uri))
    empty = bronze.limit(0)
    empty.write.format("delta").partitionBy("ingest_date").save(BRONZE_INTERACTIONS.path(settings.delta_root_uri))
    return settings, rows


def _table_rows(spark, settings, spec) -> list[tuple]:
    df = spark.read.format("delta").load(spec.path(settings.delta_root_uri))
    return sorted((tuple(row) for row in df.select(*spec.column_names).collect()), key=repr)


@pytest.fixture(scope="module")
def built(spark, day, tmp_path_factory):
    """Silver of the day built hour by hour, and all at once: per order, its settings and the re-opened counts."""
    day_settings, _ = day
    hours = hours_between(START - timedelta(hours=1), START + timedelta(hours=HOURS))
    done = {}
    for order, batches in (("hour by hour", [[h] for h in hours]), ("all at once", [hours])):
        settings = day_settings.model_copy(update={"delta_root": str(tmp_path_factory.mktemp("silver-build"))})
        shutil.copytree(Path(day_settings.delta_root) / "bronze", Path(settings.delta_root) / "bronze")
        done[order] = settings, [build_silver(spark, settings, hours=chunk)["reopened"] for chunk in batches]
    return done


def test_the_day_has_what_the_test_needs():
    rows = generated_day()
    sessions = {r["session_id"] for r in rows if r["session_id"]}
    crossing = {s for s in sessions if len({r["event_timestamp"].replace(minute=0, second=0) for r in rows
                                           if r["session_id"] == s}) > 1}
    ids = [r["event_id"] for r in rows]
    assert len(crossing) >= 15
    assert sum(1 for r in rows if r["session_id"] and r["device_id"] is None) >= 30
    assert len(ids) - len(set(ids)) >= 5
    assert any(r["kafka_timestamp"] - r["event_timestamp"] > timedelta(hours=2) for r in rows)


@pytest.mark.parametrize("order", ["hour by hour", "all at once"])
def test_hourly_builds_equal_one_build_of_the_whole_day(spark, day, built, order):
    _, rows = day
    expected = silver_events(_frame(spark, rows))
    expected_rows = sorted((tuple(row) for row in expected.collect()), key=repr)
    settings, reopened = built[order]

    assert _table_rows(spark, settings, SILVER_EVENTS) == expected_rows
    # Slimmed events of sessions that name their device in another kept event are filled (not a vacuous test).
    kept = _first_copies(rows)
    named = {r["session_id"] for r in kept if r["session_id"] and r["device_id"] is not None}
    slimmed = {r["event_id"] for r in kept if r["session_id"] in named and r["device_id"] is None}
    event_id, device_id = (SILVER_EVENTS.column_names.index(c) for c in ("event_id", "device_id"))
    filled = [r for r in expected_rows if r[event_id] in slimmed]
    assert len(filled) >= 10 and all(r[device_id] is not None for r in filled)
    # Hour by hour, a slimmed first hour is filled when the next hour is built: that build re-opens it.
    assert sum(reopened) >= 1 if order == "hour by hour" else reopened == [0]


def test_session_rows_keep_each_hours_earliest_values(spark, built):
    settings, _ = built["hour by hour"]

    parts = {(r[0], r[1]): dict(zip(SILVER_SESSION_HOURS.column_names, r, strict=True))
             for r in _table_rows(spark, settings, SILVER_SESSION_HOURS)}

    kept = _first_copies(generated_day())
    assert set(parts) == {(_hour_of(r["event_timestamp"]), r["session_id"]) for r in kept if r["session_id"]}
    gapped = [p for p in parts.values() if p["has_gaps"]]
    assert gapped and all(p["session_id"] for p in gapped)
    whole = [p for p in parts.values() if not p["has_gaps"]]
    assert whole and all(p["device_id"] and p["country"] and p["is_live"] is not None for p in whole)
    # Each value is the hour's earliest (by event time, then id) among the first copies Kafka got.
    earliest: dict[tuple[datetime, str], tuple[datetime, str, str]] = {}
    for row in kept:
        if row["session_id"] and row["device_id"] is not None:
            key = (_hour_of(row["event_timestamp"]), row["session_id"])
            candidate = (row["event_timestamp"], row["event_id"], row["device_id"])
            earliest[key] = min(earliest.get(key, candidate), candidate)
    assert {key: (p["device_id_at"], p["device_id_event_id"], p["device_id"])
            for key, p in parts.items() if p["device_id"] is not None} == earliest

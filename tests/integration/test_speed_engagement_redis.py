"""The engagement writer against the real Redis: exact contents, idempotent replays, TTLs, and the reader.

Contract: each (user, 5-second window) is three fields of the user's minute bucket, set to the window's full
values; writing the same micro-batch again leaves Redis identical; a window re-emitted with a late event is
overwritten, not added to; every key has a TTL; the reader sums the windows at or after ``since_epoch``.
"""

from __future__ import annotations

from typing import Any

from speed_layer.engagement import QUERY
from speed_layer.query import fence_value
from speed_layer.source import events_frame
from tests.speed_support import epoch, event, sink_context_fixture, snapshot
from warehouse_models.metrics.engagement import (
    engagement_hours,
    engagement_windows,
    minute_field,
    read_engagement,
)
from warehouse_models.redis_keys import SPEED_BUCKET_TTL_SECONDS
from warehouse_models.redis_plan import run


def _heartbeat(user: str, seconds: float, state: str = "playing") -> dict[str, Any]:
    return event("heartbeat", user, seconds, device_type="tv", session_id=f"ses-{user}", content_id="vod-1",
                 position_seconds=seconds, player_state=state)


def _click(user: str, seconds: float) -> dict[str, Any]:
    return event("click", user, seconds, rail_id="top_picks", button_id="tile", content_id="vod-1")


ctx = sink_context_fixture("engagement", batch_id=7)


EVENTS = [
    _heartbeat("u1", 0),
    _click("u1", 3),
    _heartbeat("u1", 10, state="paused"),
    _heartbeat("u1", 65),
    _heartbeat("u2", 1),
]


def test_windows_land_in_minute_buckets_and_a_replay_changes_nothing(spark, ctx):
    batch = events_frame(spark, EVENTS)
    QUERY.write(batch, ctx)
    keys = ctx.keys
    expected = {
        keys.user_engagement_bucket("u1", epoch(0)): {
            f"{epoch(0)}:watch_seconds": "10", f"{epoch(0)}:events": "2", f"{epoch(0)}:clicks": "1",
            f"{epoch(10)}:events": "1",
        },
        keys.user_engagement_bucket("u1", epoch(60)): {f"{epoch(65)}:watch_seconds": "10", f"{epoch(65)}:events": "1"},
        keys.user_engagement_bucket("u2", epoch(0)): {f"{epoch(0)}:watch_seconds": "10", f"{epoch(0)}:events": "1"},
        # The hour's totals (T0 starts an hour): what a reader from the batch watermark adds; and its index of
        # minutes (events per minute bucket), which the reader of the last minutes follows.
        keys.user_engagement_hour("u1", epoch(0)): {"watch_seconds": "20", "events": "4", "clicks": "1",
                                                     minute_field(epoch(0)): "3", minute_field(epoch(60)): "1"},
        keys.user_engagement_hour("u2", epoch(0)): {"watch_seconds": "10", "events": "1",
                                                     minute_field(epoch(0)): "1"},
    }
    fence = keys.speed_commit("engagement")
    assert snapshot(ctx) == {**expected, fence: fence_value(ctx)}
    assert ctx.stats == {"windows_written": 4, "buckets_written": 3}

    QUERY.write(batch, ctx)  # the same micro-batch again, as after a crash: the fence skips it
    assert snapshot(ctx) == {**expected, fence: fence_value(ctx)}
    for key in expected:
        assert 0 < ctx.client.ttl(key) <= SPEED_BUCKET_TTL_SECONDS


def test_a_new_checkpoint_writes_although_an_old_one_committed_later_batch_ids(spark, ctx):
    ctx.checkpoint_id = "old-checkpoint"
    QUERY.write(events_frame(spark, EVENTS), ctx)
    # The checkpoint was deleted and the query started anew: its batch ids start from 0 again.
    ctx.checkpoint_id, ctx.batch_id = "new-checkpoint", 0
    QUERY.write(events_frame(spark, [_heartbeat("u1", 4)]), ctx)
    bucket = ctx.client.hgetall(ctx.keys.user_engagement_bucket("u1", epoch(0)))
    assert bucket[f"{epoch(0)}:watch_seconds".encode()] == b"20"
    QUERY.write(events_frame(spark, [_heartbeat("u1", 4)]), ctx)  # its own replay is still fenced
    assert ctx.client.hgetall(ctx.keys.user_engagement_bucket("u1", epoch(0)))[
        f"{epoch(0)}:watch_seconds".encode()] == b"20"


def test_a_late_event_in_a_later_batch_adds_to_its_window(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    ctx.batch_id += 1
    QUERY.write(events_frame(spark, [_heartbeat("u1", 4)]), ctx)
    bucket = ctx.client.hgetall(ctx.keys.user_engagement_bucket("u1", epoch(0)))
    assert bucket[f"{epoch(0)}:watch_seconds".encode()] == b"20"
    assert bucket[f"{epoch(0)}:events".encode()] == b"3"
    assert bucket[f"{epoch(0)}:clicks".encode()] == b"1"


def test_reader_sums_windows_at_or_after_since(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    now = epoch(120)
    assert read_engagement(ctx.client, ctx.keys, "u1", now_epoch=now) == {
        "watch_seconds": 20, "events": 4, "clicks": 1}
    assert read_engagement(ctx.client, ctx.keys, "u1", since_epoch=epoch(10), now_epoch=now) == {
        "watch_seconds": 10, "events": 2, "clicks": 0}
    assert read_engagement(ctx.client, ctx.keys, "u1", since_epoch=epoch(60), now_epoch=now) == {
        "watch_seconds": 10, "events": 1, "clicks": 0}
    assert read_engagement(ctx.client, ctx.keys, "nobody", now_epoch=now) == {
        "watch_seconds": 0, "events": 0, "clicks": 0}
    # Buckets older than their TTL are not looked for.
    assert read_engagement(ctx.client, ctx.keys, "u1", now_epoch=now + SPEED_BUCKET_TTL_SECONDS + 600) == {
        "watch_seconds": 0, "events": 0, "clicks": 0}


def test_the_reader_follows_the_hour_index_and_reads_only_the_minutes_that_exist(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    keys, now = ctx.keys, epoch(120)
    plan = engagement_windows(keys, "u1", since_epoch=epoch(0), now_epoch=now)
    hours = next(plan)  # first round trip: the hourly hashes, up to the hour the clock skew reaches
    assert [command.args[0] for command in hours] == [keys.user_engagement_hour("u1", epoch(0)),
                                                      keys.user_engagement_hour("u1", epoch(3600))]
    minutes = plan.send([ctx.client.hgetall(command.args[0]) for command in hours])
    # Second: only the two minute buckets the index names, not one per minute up to an hour ahead.
    assert [command.args[0] for command in minutes] == [keys.user_engagement_bucket("u1", epoch(0)),
                                                        keys.user_engagement_bucket("u1", epoch(60))]
    assert run(ctx.client, engagement_windows(keys, "u1", since_epoch=epoch(0), now_epoch=now)) == {
        epoch(0): {"watch_seconds": 10, "events": 2, "clicks": 1},
        epoch(10): {"watch_seconds": 0, "events": 1, "clicks": 0},
        epoch(65): {"watch_seconds": 10, "events": 1, "clicks": 0}}


def test_hours_from_inside_an_hour_add_that_hours_windows_from_it_on(spark, ctx):
    QUERY.write(events_frame(spark, EVENTS), ctx)
    keys, now = ctx.keys, epoch(120)
    # From an hour boundary: the hour's totals, read with every live hour in one round.
    assert run(ctx.client, engagement_hours(keys, "u1", since_epoch=epoch(0), now_epoch=now)) == {
        epoch(0): {"watch_seconds": 20, "events": 4, "clicks": 1}}
    # From inside the hour: that hour's windows from ``since`` on, from the minute buckets its index names.
    assert run(ctx.client, engagement_hours(keys, "u1", since_epoch=epoch(10), now_epoch=now)) == {
        epoch(0): {"watch_seconds": 10, "events": 2, "clicks": 0}}
    assert run(ctx.client, engagement_hours(keys, "u1", since_epoch=epoch(3600), now_epoch=now)) == {}


def test_an_hour_written_without_an_index_is_read_minute_by_minute(ctx):
    keys = ctx.keys
    # What a writer before the index left: the hour's totals and a minute bucket, no minute fields.
    ctx.client.hset(keys.user_engagement_hour("u1", epoch(0)), mapping={"events": 2, "clicks": 1})
    ctx.client.hset(keys.user_engagement_bucket("u1", epoch(180)), mapping={f"{epoch(185)}:events": 2,
                                                                           f"{epoch(185)}:clicks": 1})
    assert read_engagement(ctx.client, keys, "u1", now_epoch=epoch(300)) == {
        "watch_seconds": 0, "events": 2, "clicks": 1}


def test_a_fence_written_before_fences_named_their_checkpoint_still_fences(ctx):
    from speed_layer.query import write_increments

    key = ctx.keys.user_engagement_bucket("u1", epoch(0))
    ctx.checkpoint_id = "a-checkpoint"
    ctx.client.set(ctx.keys.speed_commit(ctx.query_name), str(ctx.batch_id))  # the old form: a bare batch id
    assert not write_increments(ctx, {key: {"f": 1}}, ttl_seconds=60)
    ctx.batch_id += 1
    assert write_increments(ctx, {key: {"f": 1}}, ttl_seconds=60)
    assert ctx.client.hget(key, "f") == b"1"

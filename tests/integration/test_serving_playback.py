"""``authorize`` on a real Redis: the speed layer's streams, the grants, the race for the last slot."""

from __future__ import annotations

import threading

from serving.views.playback import authorize_now as authorize
from serving.views.playback import read_decisions
from speed_layer.concurrency import QUERY
from tests.integration.test_speed_concurrency_redis import (  # noqa: F401
    PLAN,
    S1,
    S1_END,
    S2,
    S3,
    T0,
    _heartbeats,
    ctx,
)
from tests.speed_support import write_events

TIMEOUT_S = 30
LEASE_S = 30


def _ask(ctx, session: str, at_ms: int, *, account: str = "acc-1", client=None):  # noqa: F811
    return authorize(client or ctx.client, ctx.keys, account_id=account, session_id=session, device_type="tv",
                     heartbeat_timeout_seconds=TIMEOUT_S, lease_seconds=LEASE_S, now_ms=at_ms)


def test_the_earliest_started_sessions_play_and_a_later_one_is_denied(spark, ctx):  # noqa: F811
    # Plan limit 1; s1 heartbeats from 10 s, s2 from 30 s (both streaming at 90 s, s1's last beat 30 s before).
    write_events(spark, QUERY, ctx, [PLAN, *S1, *S2], batch_id=0)
    now = T0 + 90_000
    first = _ask(ctx, "s1", now)
    assert (first.allowed, first.reason, first.limit) == (True, "within_limit", 1)
    assert [(a.session_id, a.started_ms) for a in first.active] == [("s1", T0 + 10_000), ("s2", T0 + 30_000)]
    assert _ask(ctx, "s2", now).reason == "over_limit"
    third = _ask(ctx, "s3", now)
    assert (third.allowed, third.reason) == (False, "limit_reached")

    # s1 ends explicitly; s3 heartbeats 50 s after s2 went quiet (longer than the timeout): s3 may play.
    write_events(spark, QUERY, ctx, [S1_END, *S3], batch_id=1)
    later = _ask(ctx, "s3", T0 + 150_000)
    assert (later.allowed, later.reason, [a.session_id for a in later.active]) == (True, "within_limit", ["s3"])
    # Answers per minute: the three at 90 s in one minute, the one at 150 s in the next.
    decisions = read_decisions(ctx.client, ctx.keys, minutes=2, now=(T0 + 150_000) / 1000)
    assert list(decisions.values()) == [{"allowed": 1, "denied:over_limit": 1, "denied:limit_reached": 1},
                                        {"allowed": 1}]


def test_without_a_plan_record_every_session_may_play(spark, ctx):  # noqa: F811
    write_events(spark, QUERY, ctx, [*S1, *S2], batch_id=0)
    answer = _ask(ctx, "s9", T0 + 90_000)
    assert (answer.allowed, answer.reason, answer.limit) == (True, "limit_unknown", None)
    assert [a.session_id for a in answer.active] == ["s1", "s2", "s9"]


def test_a_grant_holds_the_slot_until_its_lease_runs_out(ctx):  # noqa: F811
    ctx.client.hset(ctx.keys.account_plan_limits(), "acc-2", 1)
    assert _ask(ctx, "a", T0, account="acc-2").allowed
    # "a" never heartbeats: its grant alone holds the only slot for the lease.
    assert _ask(ctx, "b", T0 + (LEASE_S - 1) * 1000, account="acc-2").reason == "limit_reached"
    # Renewing keeps the first start: "a" is still the earliest.
    renewed = _ask(ctx, "a", T0 + 20_000, account="acc-2")
    assert renewed.allowed and renewed.active[0].started_ms == T0
    after = _ask(ctx, "b", T0 + 20_000 + LEASE_S * 1000 + 1, account="acc-2")
    assert (after.allowed, [a.session_id for a in after.active]) == (True, ["b"])


def _start_at_once(settings, account: str, session: str, now: int, barrier: threading.Barrier,
                   answers: dict[str, bool]) -> None:
    """One device on its own connection: wait for the others, then ask."""
    client = settings.redis_client()
    client.ping()
    barrier.wait()
    answers[session] = authorize(client, settings.keys, account_id=account, session_id=session, device_type="phone",
                                 heartbeat_timeout_seconds=TIMEOUT_S, lease_seconds=LEASE_S, now_ms=now).allowed
    client.close()


def test_two_devices_that_start_at_once_cannot_both_take_the_last_slot(redis_service, isolated):
    keys = isolated.keys
    setup = isolated.redis_client()
    setup.hset(keys.account_plan_limits(), "acc-3", 2)
    now = T0 + 1_000
    try:
        for round_ in range(20):
            account = f"acc-3-{round_}"
            setup.hset(keys.account_plan_limits(), account, 2)
            first = authorize(setup, keys, account_id=account, session_id="first", device_type="tv",
                              heartbeat_timeout_seconds=TIMEOUT_S, lease_seconds=LEASE_S, now_ms=now)
            assert first.allowed
            barrier = threading.Barrier(4)
            answers: dict[str, bool] = {}
            threads = [threading.Thread(target=_start_at_once, args=(isolated, account, f"dev-{i}", now, barrier,
                                                                     answers)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=10)
            assert len(answers) == 4 and sum(answers.values()) == 1, answers  # one slot left: one device got it
    finally:
        for key in setup.scan_iter(match=keys.pattern()):
            setup.delete(key)
        setup.close()


def test_an_over_limit_stream_seen_only_by_its_heartbeats_is_denied(spark, ctx):  # noqa: F811
    # Three devices authorize on a plan of 3; a fourth streams without asking (its heartbeats reach the speed
    # layer). When it asks, it is the latest start: denied; the three keep playing.
    plan = {**PLAN, "max_streams": 3}
    write_events(spark, QUERY, ctx, [plan], batch_id=0)
    start = T0 + 10_000
    for i, session in enumerate(("p1", "p2", "p3")):
        assert _ask(ctx, session, start + i * 1000).allowed
    rogue = [{**hb, "session_id": "p4", "event_id": f"p4-{hb['event_id']}"} for hb in S2[:2]]  # from 30 s
    write_events(spark, QUERY, ctx, rogue, batch_id=1)
    at = T0 + 40_000
    answer = _ask(ctx, "p4", at)
    assert (answer.allowed, answer.reason) == (False, "over_limit")
    assert [a.session_id for a in answer.active] == ["p1", "p2", "p3", "p4"]
    # The three renew their grants (each within its lease) and keep playing; the fourth stays denied.
    assert [_ask(ctx, s, at).reason for s in ("p1", "p2", "p3", "p4")] == ["within_limit"] * 3 + ["over_limit"]


def test_an_ended_session_may_not_play_again_and_a_granted_start_outlives_its_lease(spark, ctx):  # noqa: F811
    write_events(spark, QUERY, ctx, [PLAN, *S1, S1_END], batch_id=0)  # plan of one; s1 ended at 65 s
    again = _ask(ctx, "s1", T0 + 70_000)
    assert (again.allowed, again.reason) == (False, "session_ended")
    assert _ask(ctx, "s2", T0 + 70_000).allowed  # the slot s1 left is free for a new session

    # "a" is granted at 130 s; "b" streams without asking from 140 s; "a"'s heartbeats start at 145 s.
    ctx.client.hset(ctx.keys.account_plan_limits(), "acc-4", 1)
    assert _ask(ctx, "a", T0 + 130_000, account="acc-4").allowed
    beats = [{**hb, "account_id": "acc-4"} for hb in (*_heartbeats("b", [140, 150]), *_heartbeats("a", [145, 155]))]
    write_events(spark, QUERY, ctx, beats, batch_id=1)
    # At 170 s "a"'s lease (until 160 s) has run out and both are heard: "a" keeps its place from the grant.
    later = T0 + 170_000
    assert _ask(ctx, "a", later, account="acc-4").reason == "within_limit"
    assert _ask(ctx, "b", later, account="acc-4").reason == "over_limit"

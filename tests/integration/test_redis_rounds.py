"""The API's pipelined Redis client against the real Redis: rounds in flight side by side each get their own
replies, and every failure is redis-py's error, after which the next round works on a new connection."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
import uvloop

from infra.process import free_port
from serving.api.redis_rounds import RoundClient, client_for
from warehouse_models.settings import Settings


def _client(settings: Settings, *, timeout: float = 5.0) -> RoundClient:
    found = client_for(settings.redis_url, password=None, timeout=timeout)
    assert isinstance(found, RoundClient)
    return found


def test_rounds_in_flight_together_get_their_own_replies(redis_service, isolated: Settings):
    sync = isolated.redis_client()
    names = [f"{isolated.redis_key_prefix}:rounds-{i}" for i in range(300)]
    for i, name in enumerate(names):
        sync.hset(name, mapping={"n": i, "square": i * i})
    sync.set(names[7] + "-text", "not a hash")

    async def one(i: int) -> list[object]:
        # Rounds of one to four commands, so replies of different rounds interleave on the connection.
        commands = [("HGET", names[i], "n"), ("HGETALL", names[i]), ("HMGET", names[i], "square", "none"),
                    ("EXISTS", names[i])][: 1 + i % 4]
        return await client.execute_round(commands)

    async def main() -> list[object]:
        try:
            return await asyncio.gather(*(one(i) for i in range(300)),
                                        client.execute_round([("PING",), ("HGET", names[7] + "-text", "n")]),
                                        return_exceptions=True)
        finally:
            await client.aclose()

    client = _client(isolated)
    try:
        *answers, failed = asyncio.run(main())
        for i, answer in enumerate(answers):
            expected = [str(i).encode(), {b"n": str(i).encode(), b"square": str(i * i).encode()},
                        [str(i * i).encode(), None], 1][: 1 + i % 4]
            assert answer == expected, i
        # An error reply is raised as redis-py raises it; the rounds around it were not disturbed.
        assert isinstance(failed, redis.exceptions.ResponseError) and "WRONGTYPE" in str(failed)
    finally:
        sync.delete(*names, names[7] + "-text")


def test_unreachable_redis_is_a_connection_error():
    client = RoundClient(port=free_port(), timeout=1.0, connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError, match="Error connecting to Redis"):
        asyncio.run(client.execute_round([("PING",)]))
    assert time.monotonic() - started < 2


def test_a_round_past_its_timeout_fails_and_its_late_reply_is_never_read(redis_service, isolated: Settings):
    """BLPOP answers after a second; with a 0.3 s timeout the round fails, the connection is dropped, and the
    next round's reply is its own, not BLPOP's late nil."""
    sync = isolated.redis_client()
    name = f"{isolated.redis_key_prefix}:rounds-late"
    sync.set(name, "value")

    async def main() -> tuple[float, bytes]:
        client = _client(isolated, timeout=0.3)
        try:
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                await client.execute_round([("BLPOP", name + "-empty", 1)])
            waited = time.monotonic() - started
            (value,) = await client.execute_round([("GET", name)])
            return waited, value
        finally:
            await client.aclose()

    try:
        waited, value = asyncio.run(main())
        assert 0.25 < waited < 0.9 and value == b"value"
    finally:
        sync.delete(name)


def test_a_dropped_connection_fails_the_rounds_in_flight_and_the_next_round_reconnects(redis_service,
                                                                                      isolated: Settings):
    sync = isolated.redis_client()

    async def main() -> None:
        client = _client(isolated)
        try:
            (first_id,) = await client.execute_round([("CLIENT", "ID")])
            waiting = asyncio.ensure_future(client.execute_round([("BLPOP", f"rounds-{uuid.uuid4().hex}", 5)]))
            await asyncio.sleep(0.2)
            assert sync.client_kill_filter(_id=first_id) == 1
            with pytest.raises(redis.exceptions.ConnectionError):
                await waiting
            (second_id,) = await client.execute_round([("CLIENT", "ID")])
            assert second_id != first_id
            assert await client.ping()
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_user_and_password_and_a_database_from_the_url(redis_service, isolated: Settings):
    sync = isolated.redis_client()
    user, secret = f"rounds-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    sync.acl_setuser(user, enabled=True, passwords=[f"+{secret}"], commands=["+@all"], keys=["*"])
    other_db = isolated.redis_client(db=3)
    name = f"{isolated.redis_key_prefix}:rounds-db"
    other_db.set(name, "in db 3")
    host, port = isolated.redis_host_port

    async def read(url: str) -> object:
        client = client_for(url, password=None, timeout=5)
        try:
            (value,) = await client.execute_round([("GET", name)])
            return value
        finally:
            await client.aclose()

    try:
        assert asyncio.run(read(f"redis://{user}:{secret}@{host}:{port}/3")) == b"in db 3"
        assert asyncio.run(read(f"redis://{user}:{secret}@{host}:{port}/0")) is None
        with pytest.raises(redis.exceptions.AuthenticationError):
            asyncio.run(read(f"redis://{user}:wrong@{host}:{port}/3"))
    finally:
        sync.acl_deluser(user)
        other_db.delete(name)


def test_a_backlog_still_being_answered_is_not_a_silent_redis(redis_service, isolated: Settings):
    """Rounds whose replies take longer than the timeout to arrive, because the replies ahead of them are long:
    Redis keeps sending, so no round fails."""
    sync = isolated.redis_client()
    name = f"{isolated.redis_key_prefix}:rounds-long"
    sync.hset(name, mapping={f"field-{i}": "x" * 20 for i in range(1000)})
    # Between two reads of the socket the client turns a few hundred replies into dicts: at most 0.06-0.16 s on an
    # idle machine. The timeout keeps about ten times that, since this kind of shared machine can stop for hundreds
    # of milliseconds (a 0.5 s timeout failed once in a clean clone, with 0.1 s gaps between reads locally), and the
    # backlog lasts two to three timeouts (5,000 rounds: 2.9 s here).
    timeout = 1.0

    async def main() -> tuple[float, list[object]]:
        client = _client(isolated, timeout=timeout)
        try:
            await client.ping()
            started = time.monotonic()
            rounds = [client.execute_round([("HGETALL", name)]) for _ in range(5000)]
            answers = await asyncio.gather(*rounds)
            return time.monotonic() - started, [len(answer[0]) for answer in answers]
        finally:
            await client.aclose()

    try:
        took, sizes = uvloop.run(main())
        assert took > 1.5 * timeout, "the backlog did not outlast the timeout: the test proves nothing"
        assert sizes == [1000] * 5000
    finally:
        sync.delete(name)


def test_what_could_shift_the_replies_does_not(redis_service, isolated: Settings):
    """Each case once let a round take the replies meant for the next one: a value that cannot be sent, a RESP3
    false (hiredis' "no reply yet" by default), an empty round, a request cancelled while the connection opens."""
    sync = isolated.redis_client()
    name = f"{isolated.redis_key_prefix}:rounds-shift"
    sync.set(name, "mine")

    async def main() -> None:
        client = _client(isolated, timeout=2)
        try:
            opening = asyncio.ensure_future(client.execute_round([("GET", name)]))
            await asyncio.sleep(0)
            opening.cancel()  # cancelled while its connection opens: the next round still gets one
            assert await client.execute_round([("GET", name)]) == [b"mine"]
            with pytest.raises(redis.exceptions.DataError):
                await client.execute_round([("GET", None)])
            assert await client.execute_round([]) == []
            false, mine = await asyncio.gather(
                client.execute_round([("EVAL", "redis.setresp(3); return false", 0)]),
                client.execute_round([("GET", name)]))
            assert (false, mine) == ([False], [b"mine"])
        finally:
            await client.aclose()

    try:
        uvloop.run(main())
    finally:
        sync.delete(name)


def test_a_round_asking_just_after_the_connection_opened_gets_its_reply(redis_service, isolated: Settings):
    """Requests arriving while the connection opens (at start-up, or after a Redis restart under load): a round
    can ask for the connection after its opening has finished but before the opening's done callback has run.
    Awaiting a finished future does not yield to the event loop, so a round that waited on it again would spin
    forever, the callback never running, the whole API stuck at 100 % CPU. Here the round gets its reply."""
    import threading

    client = _client(isolated)
    outcome: dict[str, object] = {}

    async def main() -> None:
        connection = await client._open()
        opened: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        opened.add_done_callback(client._opened)  # type: ignore[arg-type]
        client._opening = opened  # type: ignore[assignment]
        opened.set_result(connection)  # finished; its callback only scheduled
        outcome["replies"] = await client.execute_round([("PING",)])
        await asyncio.sleep(0)  # the callback runs now, late, and must change nothing
        outcome["again"] = await client.execute_round([("PING",)])
        outcome["same_connection"] = client._connection is connection
        await client.aclose()

    thread = threading.Thread(target=uvloop.run, args=(main(),), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the round spun on the finished opening"
    assert outcome == {"replies": [True], "again": [True], "same_connection": True}

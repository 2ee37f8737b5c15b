"""The speed layer's lean pipelines against redis-py's own, on the real Redis: the same commands leave the same
data and give the same replies and errors, in plain pipelines and in transactions, with scripts loaded or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from warehouse_models.redis_lean import LeanPipeline
from warehouse_models.settings import Settings

_LUA = """
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('HLEN', KEYS[1])
"""


def _commands(prefix: str) -> Callable[[Any], None]:
    def queue(pipe: Any) -> None:
        for i in range(300):
            pipe.hincrby(f"{prefix}:h{i % 7}", f"f{i % 11}", i)
        pipe.hset(f"{prefix}:m", mapping={"a": 1, "b": 2.5, "c": "text"})
        pipe.hgetall(f"{prefix}:m")
        pipe.zadd(f"{prefix}:z", {"x": 1.5, "y": 3})
        pipe.zrange(f"{prefix}:z", 0, -1, withscores=True)
        pipe.set(f"{prefix}:s", "v", ex=60)
        pipe.expire(f"{prefix}:h0", 120)
        pipe.get(f"{prefix}:missing")
        pipe.execute_command("SCRIPT EXISTS", "0" * 40)
    return queue


def _state(client: redis.Redis, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(client.scan_iter(match=f"{prefix}:*")):
        kind = client.type(name)
        value: Any = {b"hash": client.hgetall, b"zset": lambda n: client.zrange(n, 0, -1, withscores=True),
                      b"string": client.get}[kind](name)
        out[name.decode()[len(prefix) + 1:]] = value
    return out


@pytest.mark.parametrize("transaction", [False, True])
def test_lean_pipelines_write_and_answer_as_redis_py_does(redis_service, isolated: Settings, transaction: bool):
    plain, lean = isolated.redis_client(), isolated.redis_client(lean=True)
    base = isolated.redis_key_prefix
    try:
        answers = {}
        for name, client in (("plain", plain), ("lean", lean)):
            pipe = client.pipeline(transaction=transaction)
            assert isinstance(pipe, LeanPipeline) == (name == "lean")
            _commands(f"{base}:{name}")(pipe)
            answers[name] = pipe.execute()
        assert answers["lean"] == answers["plain"]
        assert _state(plain, f"{base}:lean") == _state(plain, f"{base}:plain") != {}
        assert 0 < plain.ttl(f"{base}:lean:h0") <= 120 and 0 < plain.ttl(f"{base}:lean:s") <= 60
    finally:
        for name in plain.scan_iter(match=f"{base}:*"):
            plain.delete(name)


@pytest.mark.parametrize("transaction", [False, True])
def test_a_script_redis_does_not_hold_is_loaded_first(redis_service, isolated: Settings, transaction: bool):
    lean = isolated.redis_client(lean=True)
    key = f"{isolated.redis_key_prefix}:scripted"
    try:
        lean.script_flush()
        script = lean.register_script(_LUA)
        pipe = lean.pipeline(transaction=transaction)
        script(keys=[key], args=["a", 1, "b", 2], client=pipe)
        script(keys=[key], args=["a", 5], client=pipe)
        assert pipe.execute() == [2, 2]
        assert lean.hgetall(key) == {b"a": b"6", b"b": b"2"}
    finally:
        lean.delete(key)


def test_errors_are_raised_as_redis_py_raises_them(redis_service, isolated: Settings):
    plain, lean = isolated.redis_client(), isolated.redis_client(lean=True)
    key = f"{isolated.redis_key_prefix}:text"
    plain.set(key, "not a hash")
    try:
        for client in (plain, lean):
            # A wrong type in a plain pipeline: the other commands ran, the first error is raised...
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(key, "f", 1).get(key)
            with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
                pipe.execute()
            # ...or kept in its place when asked.
            pipe.hincrby(key, "f", 1).get(key)
            replies = pipe.execute(raise_on_error=False)
            assert isinstance(replies[0], redis.exceptions.ResponseError) and replies[1] == b"not a hash"
            # A command Redis refuses to queue aborts the transaction: nothing of it runs.
            pipe = client.pipeline(transaction=True)
            pipe.set(f"{key}-never", 1).execute_command("HSET", key)
            with pytest.raises(redis.exceptions.ResponseError):
                pipe.execute()
            assert plain.exists(f"{key}-never") == 0
            # A value that is not bytes, a string or a number: redis-py's error, nothing sent.
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("SET", f"{key}-none", None)
            with pytest.raises(redis.exceptions.DataError):
                pipe.execute()
            assert client.ping()
    finally:
        plain.delete(key)


def test_a_watching_pipeline_is_left_to_redis_py(redis_service, isolated: Settings):
    lean = isolated.redis_client(lean=True)
    key = f"{isolated.redis_key_prefix}:watched"
    lean.set(key, 1)
    try:
        pipe = lean.pipeline()
        pipe.watch(key)
        lean.set(key, 2)  # another client changes it
        pipe.multi()
        pipe.set(key, 3)
        with pytest.raises(redis.exceptions.WatchError):
            pipe.execute()
        assert lean.get(key) == b"2"
    finally:
        lean.delete(key)

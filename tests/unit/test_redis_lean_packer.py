"""The writers' command packer gives the bytes redis-py's hiredis serializer gives, and its errors."""

from __future__ import annotations

from typing import Any

import pytest
from redis.connection import HiredisRespSerializer
from redis.exceptions import DataError

from warehouse_models.redis_lean import LeanPacker


@pytest.mark.parametrize("args", [
    ("EVALSHA", "a" * 40, 2, "k1", b"k2", 7, -3, 2.5, "é", b"\x00\xff", ""),
    ("SCRIPT EXISTS", "abc"),
    (b"SCRIPT LOAD", "return 1"),
    ("HINCRBY", "user:1:h", "1700000000:watch_seconds", 10),
    ("SET", bytearray(b"key"), memoryview(b"value")),
])
def test_packs_as_redis_py_does(args: tuple[Any, ...]) -> None:
    assert LeanPacker().pack(*args) == HiredisRespSerializer().pack(*args)


@pytest.mark.parametrize("bad", [None, True, object()])
def test_a_value_redis_cannot_take_is_redis_pys_data_error(bad: Any) -> None:
    with pytest.raises(DataError):
        HiredisRespSerializer().pack("SET", "k", bad)
    with pytest.raises(DataError):
        LeanPacker().pack("SET", "k", bad)

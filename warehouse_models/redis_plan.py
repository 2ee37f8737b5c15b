"""Readers written once, run by a blocking or an asyncio Redis client: read plans.

A read plan is a generator that yields rounds of commands and receives each round's replies, then returns the
decoded value; it does no I/O itself. :func:`run` executes a plan with a ``redis.Redis`` (one pipeline per
round), :func:`arun` with a ``redis.asyncio.Redis``, so the batch layer's reconciliation and the CLI read the
views exactly as the serving API does on its event loop. A plan can ``yield from`` another to compose.

    def read_name(keys, user_id) -> Plan[str | None]:
        (value,) = yield [Command("HGET", keys.user(user_id), "name")]
        return text(value) if value is not None else None

    name = run(client, read_name(keys, "u1"))            # blocking
    name = await arun(aclient, read_name(keys, "u1"))    # asyncio
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command: ``Command("HGET", key, field)``."""

    name: str
    args: tuple[Any, ...]

    def __init__(self, name: str, *args: Any) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", args)


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """A Lua script run with ``EVALSHA`` (loaded on the first ``NOSCRIPT``, as redis-py's ``Script`` does)."""

    lua: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]


Round = Sequence[Command | ScriptCall]
Plan = Generator[Round, list[Any], T]
"""A reader: yields rounds of commands, receives their replies in order, returns its value."""

@functools.lru_cache(maxsize=64)
def _sha(lua: str) -> str:
    return hashlib.sha1(lua.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


def _argv(command: Command | ScriptCall) -> tuple[Any, ...]:
    """The command's name and arguments as Redis gets them (a script by its SHA-1)."""
    if isinstance(command, ScriptCall):
        return ("EVALSHA", _sha(command.lua), len(command.keys), *command.keys, *command.args)
    return (command.name, *command.args)


def _queue(pipe: Any, commands: Round) -> None:
    for command in commands:
        pipe.execute_command(*_argv(command))


def _scripts(commands: Round) -> list[str]:
    return [command.lua for command in commands if isinstance(command, ScriptCall)]


def run(client: Any, plan: Plan[T]) -> T:
    """Execute a plan with a blocking client: one pipeline (no MULTI) per round. A script Redis does not hold yet
    (first use, or after a restart) is loaded and its round sent again; a round with a script holds only reads
    besides it, so nothing runs twice."""
    import redis

    try:
        commands = next(plan)
        while True:
            if not commands:
                commands = plan.send([])
                continue
            for attempt in (1, 2):
                pipe = client.pipeline(transaction=False)
                _queue(pipe, commands)
                try:
                    replies = pipe.execute()
                    break
                except redis.exceptions.NoScriptError:
                    if attempt == 2:
                        raise
                    for lua in _scripts(commands):
                        client.script_load(lua)
            commands = plan.send(replies)
    except StopIteration as done:
        value: T = done.value
        return value


async def arun(client: Any, plan: Plan[T]) -> T:
    """Execute a plan with an asyncio client: one pipeline (no MULTI) per round; scripts as in :func:`run`. A client
    with an ``execute_round`` method (the serving API's pipelined connection) gets each round's commands as tuples
    (name, arguments) and returns their replies."""
    import redis

    execute_round = getattr(client, "execute_round", None)
    try:
        commands = next(plan)
        while True:
            if not commands:
                commands = plan.send([])
                continue
            for attempt in (1, 2):
                try:
                    if execute_round is not None:
                        replies = await execute_round([_argv(command) for command in commands])
                    else:
                        pipe = client.pipeline(transaction=False)
                        _queue(pipe, commands)
                        replies = await pipe.execute()
                    break
                except redis.exceptions.NoScriptError:
                    if attempt == 2:
                        raise
                    for lua in _scripts(commands):
                        if execute_round is not None:
                            await execute_round([("SCRIPT", "LOAD", lua)])
                        else:
                            await client.script_load(lua)
            commands = plan.send(replies)
    except StopIteration as done:
        value: T = done.value
        return value


def gather(*plans: Plan[Any]) -> Plan[list[Any]]:
    """Run several plans side by side: each round sends the next commands of every plan still running in one
    pipeline, so independent reads cost the round trips of the longest one. Returns their values in order."""
    values: list[Any] = [None] * len(plans)
    pending: dict[int, Round] = {}
    for i, plan in enumerate(plans):
        try:
            pending[i] = next(plan)
        except StopIteration as done:
            values[i] = done.value
    while pending:
        order = list(pending)
        replies = yield [command for i in order for command in pending[i]]
        offset = 0
        for i in order:
            count = len(pending[i])
            try:
                pending[i] = plans[i].send(list(replies[offset:offset + count]))
            except StopIteration as done:
                values[i] = done.value
                del pending[i]
            offset += count
    return values


def score_pairs(reply: Any) -> list[tuple[Any, float]]:
    """A ``ZRANGE ... WITHSCORES`` reply as (member, score) pairs, whether the client kept it flat (member, score,
    member, ...) or paired it (as redis-py's asyncio client does)."""
    if not reply:
        return []
    if isinstance(reply[0], list | tuple):
        return [(member, float(score)) for member, score in reply]
    return [(reply[i], float(reply[i + 1])) for i in range(0, len(reply), 2)]


def scan(pattern: str, *, limit: int | None = None, count: int = 1000) -> Plan[list[str]]:
    """Every key matching ``pattern`` (at most ``limit``), by ``SCAN`` rounds; as text."""
    from warehouse_models.redis_io import text

    found: list[str] = []
    cursor: Any = 0
    while True:
        (reply,) = yield [Command("SCAN", cursor, "MATCH", pattern, "COUNT", count)]
        cursor, keys = reply
        found.extend(text(key) for key in keys)
        if (limit is not None and len(found) >= limit) or int(cursor) == 0:
            return found[:limit] if limit is not None else found

"""The API's Redis client: each round of a read plan is one write on one shared connection.

Redis answers the commands of a connection in the order it got them, so requests in flight on the event loop can
share one connection: each round is written whole (no other round's commands can come between them) and takes the
next replies in order. That is the pipelining redis-py's asyncio client does per pipeline, without its per-call
machinery (a pooled connection taken and given back, a retry wrapper and a timeout context per read), which cost
the API more CPU than the rest of a request (``bench serving``: about 85 µs per round against 35 µs for the write
and the parse).

It speaks RESP3 as redis-py 8 does and applies redis-py's own reply callbacks, so a plan receives exactly what
redis-py's pipeline would give it (tests/integration/test_read_plans.py runs every read plan through both).
Errors are redis-py's: ``ConnectionError`` when Redis cannot be reached or drops the connection, ``TimeoutError``
after ``timeout`` seconds without the replies (the connection is then dropped, because later replies could no
longer be matched), the command's own error class (``NoScriptError``, ``ResponseError``) for an error reply.
A ``rediss://`` URL is not served here: :func:`client_for` gives redis-py's asyncio client for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis
import redis.asyncio
from redis._parsers import BaseParser
from redis.connection import parse_url

logger = logging.getLogger(__name__)


_NOT_ENOUGH_DATA = object()
"""What the reader returns while a reply is incomplete (hiredis' default, ``False``, is also RESP3's false)."""


def _lost(message: str) -> Callable[[], Exception]:
    return lambda: redis.exceptions.ConnectionError(message)


@dataclass(slots=True)
class _Round:
    future: asyncio.Future[list[Any]]
    count: int
    replies: list[Any] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class _Connection(asyncio.Protocol):
    """One connection: the rounds waiting for replies, oldest first."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(protocolError=redis.exceptions.InvalidResponse,
                                     replyError=BaseParser.parse_error, notEnoughData=_NOT_ENOUGH_DATA)
        self.waiting: deque[_Round] = deque()
        self.transport: Any = None
        self.closed = False
        self.last_read = 0.0
        """Event-loop time of the last bytes from Redis."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports do not subclass asyncio.Transport

    def send(self, waiting: _Round, data: bytes) -> None:
        """Queue the round for the next replies and write its commands (a closed connection fails it)."""
        if self.closed:
            raise redis.exceptions.ConnectionError("Connection to Redis closed.")
        self.waiting.append(waiting)
        try:
            self.transport.write(data)
        except RuntimeError as exc:  # uvloop: the transport closed under us
            self.fail(_lost(f"Connection to Redis lost: {exc}"))
            raise redis.exceptions.ConnectionError(f"Connection to Redis lost: {exc}") from exc

    def data_received(self, data: bytes) -> None:
        self.last_read = asyncio.get_running_loop().time()
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except redis.exceptions.InvalidResponse as exc:
                self.fail(_lost(f"Redis sent what is not RESP: {exc}"))
                return
            if reply is _NOT_ENOUGH_DATA:
                return
            if not waiting:  # a reply nobody asked for: the stream can no longer be trusted
                self.fail(_lost("Redis sent a reply no command was waiting for"))
                return
            head = waiting[0]
            head.replies.append(reply)
            if len(head.replies) == head.count:
                waiting.popleft()
                if not head.future.done():  # a cancelled request's replies are read and dropped
                    head.future.set_result(head.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_waiting(_lost(f"Connection to Redis lost: {exc}" if exc else "Connection closed by server."))

    def fail(self, error: Callable[[], Exception]) -> None:
        """Fail every waiting round (each with its own ``error()``) and drop the connection (the next round opens
        a new one)."""
        self.closed = True
        self._fail_waiting(error)
        if self.transport is not None:
            self.transport.abort()

    def _fail_waiting(self, error: Callable[[], Exception]) -> None:
        while self.waiting:
            waiting = self.waiting.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(error())


def _packed(commands: Sequence[tuple[Any, ...]]) -> bytes:
    """The commands in RESP; a value hiredis cannot send (None, a bool) is redis-py's ``DataError``."""
    try:
        return b"".join([hiredis.pack_command(command) for command in commands])
    except TypeError as exc:
        raise redis.exceptions.DataError(f"Invalid input in a Redis command ({exc}): convert it to bytes, a "
                                         "string or a number first") from exc


class RoundClient:
    """An asyncio Redis client that executes read-plan rounds (:func:`warehouse_models.redis_plan.arun` calls
    :meth:`execute_round`) on one pipelined connection, opened on first use and again after a failure."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 6379, path: str | None = None, db: int = 0,
                 username: str | None = None, password: str | None = None, timeout: float = 1.0,
                 connect_timeout: float = 1.0) -> None:
        self.host, self.port, self.path, self.db = host, port, path, db
        self.username, self.password = username, password
        self.timeout, self.connect_timeout = timeout, connect_timeout
        # redis-py's reply callbacks, by upper-case command name (its own dict folds case on every lookup)
        self.callbacks = {name.upper(): callback
                          for name, callback in redis.asyncio.Redis(protocol=3).response_callbacks.items()
                          if callback is not None}
        self._connection: _Connection | None = None
        self._opening: asyncio.Future[_Connection] | None = None
        self._closed = False

    @property
    def address(self) -> str:
        return self.path or f"{self.host}:{self.port}"

    async def execute_round(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send the commands (each a tuple: name, then arguments) in one write; their replies in order, each
        through redis-py's callback for its command. Raises the first error reply, as redis-py's pipeline does."""
        if not commands:
            return []
        data = _packed(commands)
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        replies = await self._replies(connection, data, len(commands), self.timeout)
        callbacks = self.callbacks
        out = []
        for command, reply in zip(commands, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            name = command[0]
            if not isinstance(name, str):
                name = bytes(name).decode()
            callback = callbacks.get(name if name.isupper() else name.upper())
            out.append(callback(reply) if callback is not None else reply)
        return out

    async def ping(self) -> bool:
        (reply,) = await self.execute_round([("PING",)])
        return bool(reply)

    async def aclose(self) -> None:
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.fail(_lost("the client was closed"))

    async def _replies(self, connection: _Connection, data: bytes, count: int, timeout: float) -> list[Any]:
        """Write a round's packed commands and wait for its ``count`` replies (see :meth:`_expire`)."""
        loop = asyncio.get_running_loop()
        waiting = _Round(loop.create_future(), count)
        connection.send(waiting, data)
        self._arm(loop, connection, waiting, timeout)
        try:
            return await waiting.future
        finally:
            if waiting.timer is not None:
                waiting.timer.cancel()

    def _arm(self, loop: asyncio.AbstractEventLoop, connection: _Connection, waiting: _Round, delay: float) -> None:
        waiting.timer = loop.call_later(delay, self._expire, loop, connection, waiting, loop.time() + delay)

    def _expire(self, loop: asyncio.AbstractEventLoop, connection: _Connection, waiting: _Round,
                deadline: float) -> None:
        """The round's time is up. If Redis sent bytes within the last ``timeout`` seconds, the connection is alive
        and the replies ahead of this round are still coming (a backlog of rounds, long answers): wait on, rather
        than fail every request in flight. Otherwise Redis has been silent for ``timeout`` seconds: fail every
        round on the connection."""
        if waiting.future.done():
            return
        if connection.closed:  # its rounds were failed when it closed; this one too, whatever happened
            waiting.future.set_exception(redis.exceptions.ConnectionError("Connection to Redis closed."))
            return
        quiet = loop.time() - max(connection.last_read, deadline - self.timeout)
        if quiet < self.timeout:
            self._arm(loop, connection, waiting, self.timeout - quiet)
            return
        logger.warning("no reply from Redis at %s for %g s: dropping the connection", self.address, self.timeout)
        connection.fail(lambda: redis.exceptions.TimeoutError(f"Timeout reading from Redis at {self.address}"))

    async def _connect(self) -> _Connection:
        """An open connection, opening one (once for every round that asks meanwhile)."""
        while True:
            if self._closed:
                raise redis.exceptions.ConnectionError("the Redis client was closed")
            connection = self._connection
            if connection is not None and not connection.closed:
                return connection
            opening = self._opening
            if opening is None:
                opening = self._opening = asyncio.ensure_future(self._open())
                opening.add_done_callback(self._opened)
            if opening.done():
                # Finished, but its done callback may not have run yet: adopt it here. Awaiting a finished future
                # does not yield to the event loop, so waiting on it again would spin and the callback never run.
                self._opened(opening)
                opening.result()  # the opening's error, if it failed
                continue
            # shielded: a request cancelled while waiting does not cancel the opening the others wait for
            await asyncio.shield(opening)

    def _opened(self, opening: asyncio.Future[_Connection]) -> None:
        """Adopt a finished opening's connection, once (its done callback, or :meth:`_connect` if that comes
        first; a superseded opening changes nothing)."""
        if self._opening is not opening:
            return
        self._opening = None
        if opening.cancelled() or opening.exception() is not None:
            return
        connection = opening.result()
        if self._closed:
            connection.fail(_lost("the client was closed"))
        else:
            self._connection = connection

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.path is not None:
                    _, connection = await loop.create_unix_connection(_Connection, self.path)
                else:
                    _, connection = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise redis.exceptions.ConnectionError(f"Error connecting to Redis at {self.address}: {exc}") from exc
        hello: tuple[Any, ...] = ("HELLO", 3)
        if self.password is not None:
            hello += ("AUTH", self.username or "default", self.password)
        handshake = [hello, *([("SELECT", self.db)] if self.db else [])]
        replies = await self._replies(connection, _packed(handshake), len(handshake), self.connect_timeout)
        for reply in replies:
            if isinstance(reply, redis.exceptions.ConnectionError):  # AuthenticationError is one
                connection.fail(_lost("the handshake failed"))
                raise reply
            if isinstance(reply, Exception):
                connection.fail(_lost("the handshake failed"))
                raise redis.exceptions.ConnectionError(
                    f"Redis at {self.address} refused the connection's set-up (HELLO 3, AUTH, SELECT; the serving "
                    f"API needs Redis 6 or newer): {reply}") from reply
        return connection


def client_for(url: str, *, password: str | None, timeout: float) -> Any:
    """The API's asyncio client for ``url``: a :class:`RoundClient` for ``redis://`` and ``unix://``, redis-py's
    asyncio client for ``rediss://`` (TLS)."""
    if url.startswith("rediss://"):
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if password is not None:
            options["password"] = password
        return redis.asyncio.Redis.from_url(url, **options)
    parsed = parse_url(url)
    return RoundClient(host=parsed.get("host", "127.0.0.1"), port=int(parsed.get("port", 6379)),
                       path=parsed.get("path"), db=int(parsed.get("db", 0) or 0),
                       username=parsed.get("username"), password=password or parsed.get("password"),
                       timeout=timeout, connect_timeout=timeout)

"""The HTTP protocol the serving layer's apps run on: uvicorn's httptools protocol with a deadline for reading
each request whole.

uvicorn times out a keep-alive connection that idles between requests, but not one that is still sending a
request: a client that connects and sends nothing, or its headers or body a byte at a time, holds the
connection (and, many times over, the process' file descriptors) for as long as it likes. Here a connection
must deliver each request, from its first byte (or from the connection's opening, for the first one) to the
end of its body, within ``serving_request_read_timeout_seconds``; otherwise it is answered 408 and closed.
The time the app then takes to answer is not counted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

PROTOCOL = "serving.http_protocol:TimedHttpToolsProtocol"
"""What :meth:`serving.http_service.HttpService.serve` passes to uvicorn as its ``http`` protocol."""


@functools.cache
def read_timeout_seconds() -> float:
    """``serving_request_read_timeout_seconds`` of the environment the server was started with (read once)."""
    from warehouse_models.settings import load_settings

    return float(load_settings().serving_request_read_timeout_seconds)


def timeout_answer(seconds: float) -> bytes:
    """The 408 sent to a client that did not send its request in time (the API's error shape), closing."""
    body = orjson.dumps({"error": {"status": 408, "code": "request_timeout", "message": (
        f"the request was not received whole within {seconds:g} s of its start; send it at once")}})
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body))


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with a deadline per request read (see the module's docstring): a timer from the
    request's first byte (the connection's opening, for its first request) to the end of its body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout_seconds()
        self.read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.read_deadline is None:
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self) -> None:
        self.read_deadline = self.loop.call_later(self.read_timeout, self.read_timed_out)

    def _disarm(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def read_timed_out(self) -> None:
        """Answer 408 (unless an answer is already under way on the connection) and close."""
        self.read_deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        logger.info("closing the connection of %s: no whole request within %g s", client, self.read_timeout)
        cycle = self.cycle  # the request being read, or the one before it (a new cycle starts with the headers)
        if cycle is None or cycle.response_complete or not cycle.response_started:  # never cut into an answer
            self.transport.write(timeout_answer(self.read_timeout))
        self.transport.close()

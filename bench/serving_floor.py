"""The floor under the serving API's GET figure: the least an ASGI app on the same server can do per request.

A bare ASGI callable, served by uvicorn as the API is (uvloop, `serving.http_protocol`), that answers
``GET /v1/users/{user}/resume/{content}`` with one ``HGET`` of the same key, on the API's own Redis client
(:class:`serving.api.redis_rounds.RoundClient`), and a small JSON body:
no key check, no freshness read, no routing. ``bench serving`` drives it with the same load as the API's resume
route, so the gap between the two is what the API's own work costs, and the floor's own ratio to a raw GET is
what this machine and stack allow at all.

Below it, ``python -m bench.serving_floor --mode protocol|no_redis --port N`` serves the same path with no ASGI server
at all: an asyncio protocol on uvloop that parses requests with httptools (uvicorn's own parser) and writes each
answer in one write, either after the same ``HGET`` (``protocol``: what a server without any framework could do) or
at once with a fixed body (``no_redis``: what the load generator, loopback and one Python event loop
cost by themselves).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import httptools
import orjson
import uvloop

from serving.api.redis_rounds import client_for
from warehouse_models.redis_keys import KeyLayout

_client = client_for(os.environ.get("REELYTICS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"), password=None,
                     timeout=1.0)
_keys = KeyLayout(os.environ.get("REELYTICS_BENCH_KEY_PREFIX", "bench-serving"))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    parts = scope["path"].split("/")  # "", "v1", "users", user, "resume", content
    if len(parts) != 6:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    (value,) = await _client.execute_round([("HGET", _keys.resume_position(parts[3]), parts[5])])
    body = orjson.dumps({"user_id": parts[3], "content_id": parts[5],
                         "position": value.decode() if isinstance(value, bytes) else value})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _response(body: bytes, keep_alive: bool) -> bytes:
    close = b"" if keep_alive else b"connection: close\r\n"
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (len(body), close, body))


class _FloorProtocol(asyncio.Protocol):
    """One connection: requests parsed by httptools, answered in order (a client that pipelines waits for its
    earlier answers, as HTTP/1.1 requires)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.url = b""
        self.answers: asyncio.Future[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        url, self.url = self.url, b""
        keep_alive = self.parser.should_keep_alive()
        if self.mode == "no_redis" and self.answers is None:
            self._write(_response(b'{"position":"0"}', keep_alive), keep_alive)
            return
        task = asyncio.ensure_future(self._answer(url, keep_alive, self.answers))
        self.answers = task
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Future[None]) -> None:
        if self.answers is task:
            self.answers = None
        if not task.cancelled() and task.exception() is not None:  # e.g. Redis unreachable: drop the connection
            self.transport.close()

    async def _answer(self, url: bytes, keep_alive: bool, earlier: asyncio.Future[None] | None) -> None:
        parts = url.split(b"?", 1)[0].decode("latin-1").split("/")  # "", "v1", "users", user, "resume", content
        body = b'{"position":"0"}'
        if self.mode == "protocol" and len(parts) == 6:
            (value,) = await _client.execute_round([("HGET", _keys.resume_position(parts[3]), parts[5])])
            body = orjson.dumps({"user_id": parts[3], "content_id": parts[5],
                                 "position": value.decode() if isinstance(value, bytes) else value})
        if earlier is not None:
            await earlier
        self._write(_response(body, keep_alive), keep_alive)

    def _write(self, data: bytes, keep_alive: bool) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A floor server for `bench serving` (see the module's docstring).")
    parser.add_argument("--mode", choices=("protocol", "no_redis"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: _FloorProtocol(args.mode), args.host,
                                                                 args.port, backlog=2048)
        await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()

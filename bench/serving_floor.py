"""The floor under the serving API's GET figure: the least an ASGI app on the same server can do per request.

A bare ASGI callable, served by uvicorn with uvloop and httptools as the API is, that answers
``GET /v1/users/{user}/resume/{content}`` with one ``HGET`` of the same key, on the API's own Redis client
(:class:`serving.api.redis_rounds.RoundClient`), and a small JSON body:
no key check, no freshness read, no routing. ``bench serving`` drives it with the same load as the API's resume
route, so the gap between the two is what the API's own work costs, and the floor's own ratio to a raw GET is
what this machine and stack allow at all.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

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

"""The API over HTTP/1.1 as clients speak it, in a real API process over a real Redis (raw sockets): answers of the hot
routes and of the declared routes share a connection in order, keep-alive and ``Connection: close`` hold, a body sent
after ``Expect: 100-continue`` is read, a malformed body still reaches the declared route, and hot answers are
timed in /metrics."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from serving.api.auth import create_key
from speed_layer.resume import set_if_newer
from warehouse_models.settings import Settings


def _responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` HTTP/1.1 answers read one after another from the socket (each with a content-length)."""
    stream = sock.makefile("rb")
    out = []
    for _ in range(count):
        status = int(stream.readline().split()[1])
        headers = {}
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, value = line.decode("latin-1").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        out.append((status, headers, stream.read(int(headers["content-length"]))))
    return out


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: api", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def api(redis_service, isolated: Settings, tmp_path) -> Iterator[tuple[Settings, dict[str, str]]]:
    with _running_api(isolated.model_copy(update={"data_dir": tmp_path / "data"})) as running:
        yield running


@contextlib.contextmanager
def _running_api(settings: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A real API process over ``settings`` (on a free port), with a key per scope and a few views."""
    from infra.process import free_port
    from serving.api.service import API

    settings = settings.model_copy(update={"serving_port": free_port()})
    client = settings.redis_client()
    keys = {scope: create_key(client, settings.keys, name=f"{scope}-app", scopes=[scope])
            for scope in ("read", "playback", "admin")}
    set_if_newer(client, settings.keys, {"u1": {"vod-1": (int(time.time() * 1000), 321.5)}})
    client.hset(settings.keys.account_plan_limits(), "acc-1", 2)
    try:
        API.start(settings)
        yield settings, keys
    finally:
        API.stop(settings)
        for key in client.scan_iter(match=settings.keys.pattern()):
            client.delete(key)
        client.close()


def _connect(settings: Settings) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", settings.serving_port), timeout=10)
    return sock


def test_pipelined_hot_and_declared_requests_answer_in_order(api):
    settings, keys = api
    read, playback = {"X-API-Key": keys["read"]}, {"X-API-Key": keys["playback"]}
    authorize = orjson.dumps({"account_id": "acc-1", "session_id": "s-1", "device_type": "tv"})
    json_type = {"Content-Type": "application/json"}
    sent = [
        _request("GET", "/v1/users/u1/resume/vod-1", read),                                    # hot, found
        _request("GET", "/v1/freshness", read),                                                # declared
        _request("GET", "/v1/users/nobody/resume/vod-1", read),                                # hot, 404
        _request("POST", "/v1/playback/authorize", {**playback, **json_type}, authorize),      # hot, allowed
        _request("POST", "/v1/playback/authorize", {**playback, **json_type}, b'{"account_id": 5}'),  # declared
        _request("GET", "/v1/users/u1/resume/vod-1", {**read, "Connection": "close"}),       # hot, last
    ]
    with _connect(settings) as sock:
        sock.sendall(b"".join(sent))  # all at once: uvicorn queues what arrives while an answer is pending
        answers = _responses(sock, len(sent))
        assert sock.recv(1) == b""  # closed after the request that asked for it
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 200, 404, 200, 422, 200]
    first = orjson.loads(answers[0][2])
    assert first["positions"][0]["content_id"] == "vod-1" and first["positions"][0]["position_seconds"] == 321.5
    assert "freshness" in first and orjson.loads(answers[1][2])["freshness"] is not None
    assert orjson.loads(answers[2][2])["error"]["code"] == "not_found"
    decided = orjson.loads(answers[3][2])
    assert decided["allowed"] is True and decided["limit"] == 2
    assert [s["session_id"] for s in decided["active"]] == ["s-1"]
    assert orjson.loads(answers[4][2])["error"]["code"] == "invalid_parameter"
    for _, headers, body in answers:
        assert int(headers["content-length"]) == len(body) and headers["content-type"] == "application/json"
        assert "date" in headers and headers["server"] == "uvicorn"
    assert answers[-1][1]["connection"] == "close"
    assert all("connection" not in headers for _, headers, _ in answers[:-1])


def test_keep_alive_expect_continue_and_metrics(api):
    settings, keys = api
    read, playback = {"X-API-Key": keys["read"]}, {"X-API-Key": keys["playback"]}
    body = orjson.dumps({"account_id": "acc-1", "session_id": "s-2", "device_type": "phone"})
    with _connect(settings) as sock:
        for _ in range(3):  # one connection, request after request
            sock.sendall(_request("GET", "/v1/users/u1/resume/vod-1", read))
            ((status, _, _),) = _responses(sock, 1)
            assert status == 200
        # The client waits for "100 Continue" before it sends the body.
        head = _request("POST", "/v1/playback/authorize", {**playback, "Content-Type": "application/json",
                                                            "Expect": "100-continue",
                                                            "Content-Length": str(len(body))})
        sock.sendall(head)
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        ((status, _, answer),) = _responses(sock, 1)
        assert status == 200 and orjson.loads(answer)["allowed"] is True
    with _connect(settings) as sock:  # HTTP/1.0 without keep-alive: answered, then closed
        sock.sendall(f"GET /v1/users/u1/resume/vod-1 HTTP/1.0\r\nX-API-Key: {keys['read']}\r\n\r\n".encode())
        ((status, headers, _),) = _responses(sock, 1)
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(1) == b""
    with _connect(settings) as sock:
        sock.sendall(_request("GET", "/metrics", {"Connection": "close"}))
        ((_, _, text),) = _responses(sock, 1)
    resumes = [line for line in text.decode().splitlines() if line.startswith("reelytics_api_request_seconds_count")
               and 'route="/v1/users/{user_id}/resume/{content_id}"' in line and 'status="200"' in line]
    assert len(resumes) == 1 and float(resumes[0].rsplit(" ", 1)[1]) == 4


def _closed(sock: socket.socket) -> bool:
    """Whether the server closes the connection within 10 s (what it still sends before that is dropped)."""
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            continue
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_a_body_over_the_limit_is_refused_before_it_is_read(api):
    settings, keys = api
    limit = settings.serving_max_body_bytes
    playback = {"X-API-Key": keys["playback"], "Content-Type": "application/json"}
    # Fifty megabytes announced, one kilobyte sent: the answer comes without waiting for the rest.
    for headers in (playback, {**playback, "Content-Type": "text/plain"}):  # the hot route, then the declared one
        with _connect(settings) as sock:
            sock.sendall(_request("POST", "/v1/playback/authorize", {**headers, "Content-Length": str(50 << 20)})
                         + b"{" + b" " * 1024)
            ((status, answer_headers, answer),) = _responses(sock, 1)
            assert status == 413, answer
            error = orjson.loads(answer)["error"]
            assert error["code"] == "body_too_large" and str(limit) in error["message"]
            assert answer_headers["connection"] == "close" and _closed(sock)
    # No length announced (chunked): refused once the bytes received pass the limit, not at the end of the stream.
    with _connect(settings) as sock:
        sock.sendall(_request("POST", "/v1/playback/authorize", {**playback, "Transfer-Encoding": "chunked"}))
        chunk = b"%x\r\n%s\r\n" % (4096, b" " * 4096)
        sent = 0
        sock.settimeout(0.2)
        answered = b""
        while sent < 20 * limit and not answered:
            sock.sendall(chunk)
            sent += 4096
            try:
                answered = sock.recv(65536)
            except TimeoutError:
                continue
        assert answered.startswith(b"HTTP/1.1 413"), answered[:200]
        assert limit < sent <= limit + 64 * 4096
    # Within the limit, a padded body is read and decided as usual; the server kept serving throughout.
    body = orjson.dumps({"account_id": "acc-1", "session_id": "s-9", "device_type": "tv"})
    padded = body[:-1] + b" " * (limit - len(body) - 1) + b"}"
    with _connect(settings) as sock:
        sock.sendall(_request("POST", "/v1/playback/authorize", playback, padded))
        ((status, _, answer),) = _responses(sock, 1)
        assert status == 200 and orjson.loads(answer)["allowed"] is True
        sock.sendall(_request("GET", "/metrics", {"Connection": "close"}))
        ((_, _, text),) = _responses(sock, 1)
    refused = [line for line in text.decode().splitlines() if line.startswith("reelytics_api_request_seconds_count")
               and 'route="/v1/playback/authorize"' in line and 'status="413"' in line]
    assert len(refused) == 1 and float(refused[0].rsplit(" ", 1)[1]) == 3


def test_a_request_not_sent_whole_in_time_is_answered_408_and_closed(redis_service, isolated: Settings, tmp_path):
    """A connection that sends nothing, or its headers a piece at a time, is closed after the read timeout
    (shortened here from its default so the test is quick); a slow request within it and keep-alive are kept."""
    timeout = 1.5
    with _running_api(isolated.model_copy(update={"data_dir": tmp_path / "data",
                                                  "serving_request_read_timeout_seconds": timeout})) as running:
        settings, keys = running
        read = {"X-API-Key": keys["read"]}
        request = _request("GET", "/v1/users/u1/resume/vod-1", read)

        def timed_out(sock: socket.socket, started: float) -> None:
            ((status, headers, answer),) = _responses(sock, 1)
            assert status == 408 and headers["connection"] == "close", answer
            assert orjson.loads(answer)["error"]["code"] == "request_timeout"
            assert timeout <= time.monotonic() - started < timeout + 2
            assert _closed(sock)

        with _connect(settings) as sock:  # connects, sends nothing
            timed_out(sock, time.monotonic())
        with _connect(settings) as sock:  # the headers a few bytes at a time, never finished
            started = time.monotonic()
            for piece in (request[i:i + 8] for i in range(0, 32, 8)):
                sock.sendall(piece)
                time.sleep(timeout / 5)
            timed_out(sock, started)
        with _connect(settings) as sock:
            # Within the deadline, a slow request is answered; keep-alive idles are uvicorn's to time (5 s), and
            # each request starts a deadline of its own.
            for _ in range(2):
                sock.sendall(request[:20])
                time.sleep(timeout / 2)
                sock.sendall(request[20:])
                ((status, _, _),) = _responses(sock, 1)
                assert status == 200
                time.sleep(timeout * 1.2)
            sock.sendall(request)
            ((status, _, _),) = _responses(sock, 1)
            assert status == 200



def test_requests_arriving_together_before_the_redis_connection_is_open_are_all_answered(redis_service,
                                                                                        isolated: Settings):
    """The API opens its Redis connection on the first request that needs it, and again after Redis dropped it.
    Requests that arrive together meanwhile all wait for that one opening: an API started under traffic (behind
    a load balancer) and an API whose Redis restarted answer every one of them (200, or 503 while a lost
    connection is being noticed), and the next ones 200. One such burst once left the API spinning forever."""
    import os
    import subprocess
    import sys

    from infra.process import free_port
    from warehouse_models.settings import settings_environment

    settings = isolated.model_copy(update={"serving_port": free_port()})
    redis_client = settings.redis_client()
    read = {"X-API-Key": create_key(redis_client, settings.keys, name="busy-app", scopes=["read"],
                                    rate_per_second=100_000)}
    set_if_newer(redis_client, settings.keys, {"u1": {"vod-1": (int(time.time() * 1000), 321.5)}})
    server = subprocess.Popen([sys.executable, "-m", "serving.api", "--log-level", "warning"],
                              env={**os.environ, **settings_environment(settings)})
    clients: list[socket.socket] = []

    def burst() -> list[int]:
        for sock in clients:
            sock.sendall(_request("GET", "/v1/users/u1/resume/vod-1", read))
        return [_responses(sock, 1)[0][0] for sock in clients]  # a socket timeout fails the test

    try:
        deadline = time.monotonic() + 30
        while not clients:  # no health probe first: it would open the Redis connection
            try:
                clients.append(_connect(settings))
            except ConnectionRefusedError:
                assert server.poll() is None and time.monotonic() < deadline, "the API did not start"
                time.sleep(0.05)
        clients += [_connect(settings) for _ in range(31)]
        assert burst() == [200] * len(clients)
        for _ in range(5):
            assert redis_client.client_kill_filter(_type="normal", skipme=True) >= 1
            assert set(burst()) <= {200, 503}
            assert burst() == [200] * len(clients)
    finally:
        for sock in clients:
            sock.close()
        server.kill()
        server.wait()
        for key in redis_client.scan_iter(match=settings.keys.pattern()):
            redis_client.delete(key)
        redis_client.close()

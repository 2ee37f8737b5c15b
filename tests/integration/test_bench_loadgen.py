"""The serving benchmarks' instruments. The load generator (bench/loadgen.c), built with the system's compiler and
run against a real HTTP server on loopback: it keeps its schedule, sends every request once, and reports every
request, answered or not. The machine-stall probe: it sees a pause of its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import loadgen


class _Server:
    """An HTTP/1.1 server on loopback that keeps connections alive and answers by path: ``/ok`` 200, ``/error`` 503,
    ``/close`` closes the connection without an answer, ``/slow`` answers after ``slow_s``, ``/chunked`` answers 200
in chunks, written in pieces. Counts what it got."""

    def __init__(self, slow_s: float) -> None:
        self.slow_s = slow_s
        self.received: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The client closing, or the test ending, ends the connection's loop.
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            await self._answer(reader, writer)
        writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            self.received[path] += 1
            if path == "/close":
                break
            if path == "/slow":
                await asyncio.sleep(self.slow_s)
            if path == "/chunked":  # in pieces, as a streamed answer comes
                for piece in (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
                              b"6\r\n world\r\n", b"0\r\n", b"\r\n"):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.002)
                continue
            status, body = ("503 Service Unavailable", b'{"error": "busy"}') if path == "/error" else \
                ("200 OK", b'{"ok": true}')
            writer.write(f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\ncontent-type: application/json"
                         f"\r\n\r\n".encode() + body)
            await writer.drain()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loadgen.build(tmp_path_factory.mktemp("cache"))


@pytest.fixture()
def server() -> Iterator[_Server]:
    found = _Server(slow_s=2.0)
    yield found
    found.stop()


def _targets(tmp_path: Path, port: int, paths: list[str]) -> Path:
    path = tmp_path / "targets.jsonl"
    path.write_text("\n".join(json.dumps({"method": "POST" if p == "/ok-post" else "GET",
                                          "url": f"http://127.0.0.1:{port}{p}", "header": {"X-API-Key": ["k"]},
                                          **({"body": "eyJhIjogMX0="} if p == "/ok-post" else {})}) for p in paths))
    return path


def _lines(generator: Path, targets: Path, rate: int, seconds: float, timeout_s: float) -> list[str]:
    return loadgen.run_lines(generator, targets, rate, seconds, timeout_s=timeout_s, max_connections=64)


def test_every_request_goes_out_once_on_its_schedule_and_is_timed_from_its_due_time(
        generator: Path, server: _Server, tmp_path: Path) -> None:
    targets = _targets(tmp_path, server.port, ["/ok", "/ok-post"])
    lines = _lines(generator, targets, rate=400, seconds=1, timeout_s=5)
    rows = [tuple(int(f) for f in line.split()) for line in lines]
    assert len(rows) == 400
    assert server.received == {"/ok": 200, "/ok-post": 200}  # each request once, bodies read whole
    assert [due for due, *_ in rows] == [i * 2_500_000 for i in range(400)]  # 1 / 400 s apart, from the start
    assert all(status == 200 for *_, status in rows)
    assert all(sent >= due and latency >= sent - due for due, sent, latency, _ in rows)
    found = loadgen.report(lines)
    assert found["success"] == 1.0 and found["status_codes"] == {"200": 400}


def test_refusals_dropped_connections_and_timeouts_are_reported_not_lost(
        generator: Path, server: _Server, tmp_path: Path) -> None:
    targets = _targets(tmp_path, server.port, ["/ok", "/error", "/close", "/slow", "/chunked"])
    lines = _lines(generator, targets, rate=50, seconds=1, timeout_s=0.5)
    assert len(lines) == 50
    found = loadgen.report(lines)
    # 10 each: answered, answered 503, closed without an answer, not answered within the 0.5 s timeout, chunked
    assert found["status_codes"] == {"200": 20, "503": 10, "0": 20}
    assert [line.split()[3] for line in lines[4::5]] == ["200"] * 10  # the chunked answers, read whole
    assert server.received == {"/ok": 10, "/error": 10, "/close": 10, "/slow": 10, "/chunked": 10}
    timed_out = [int(line.split()[2]) for line in lines[3::5]]
    assert all(500_000_000 <= latency < 1_000_000_000 for latency in timed_out), timed_out


def test_a_port_nobody_listens_on_fails_each_request_and_the_run_still_ends(generator: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lines = _lines(generator, _targets(tmp_path, port, ["/ok"]), rate=100, seconds=0.2, timeout_s=1)
    assert loadgen.report(lines)["status_codes"] == {"0": 20}


def test_the_wrapper_runs_it_and_reports_the_run(generator: Path, server: _Server, tmp_path: Path) -> None:
    found = loadgen.run(generator, _targets(tmp_path, server.port, ["/ok"]), 200, 0.5)
    assert found["requests"] == 100 and found["success"] == 1.0
    assert 0 < found["latencies"]["50th"] <= found["latencies"]["99th"] <= found["latencies"]["max"]


def test_the_stall_probe_sees_a_pause_of_its_process() -> None:
    import os
    import subprocess
    import sys

    from bench import serving

    # SIGSTOP, then SIGCONT 50 ms later, of this process from another one: the probe must count that pause. The
    # probe starts once the other process is up (its start-up alone can take longer than a short probe on a busy
    # machine) and lasts long enough for the pause to fall inside it.
    pauser = subprocess.Popen([sys.executable, "-c", f"import os, signal, time\nprint('ready', flush=True)\n"
                               f"time.sleep(0.3)\nos.kill({os.getpid()}, signal.SIGSTOP)\ntime.sleep(0.05)\n"
                               f"os.kill({os.getpid()}, signal.SIGCONT)"], stdout=subprocess.PIPE, text=True)
    assert pauser.stdout is not None and pauser.stdout.readline().strip() == "ready"
    found = serving._machine_stalls(2.0)
    pauser.wait(10)
    assert found["stalls"] >= 1 and found["stall_ms_max"] >= 40, found

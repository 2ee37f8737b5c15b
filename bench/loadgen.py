"""The serving benchmarks' load generator: ``bench/loadgen.c``, built with the system's C compiler on first use.

It is open-loop and keeps its schedule: request ``i`` is due ``i / rate`` seconds after the start, goes out on a
free keep-alive connection (or a new one), and its latency runs from the due time to the last byte of the answer,
so a send that comes late counts against the answer instead of hiding it. One thread, epoll with a nanosecond
timeout; a few tens of microseconds of CPU per request.

Why not vegeta, which the serving benchmark used before: on this kind of machine (two cores shared by the load
generator, the API and Redis) vegeta's sends come in clumps, since its pacing sleeps in Go's timers, which wake
about a millisecond late at this rate, and it cost about as much CPU per request as the API it measured. Those
clumps queue in the API's one event loop and were most of its tail (docs/serving.md, "How fast").

Targets are given as vegeta's JSON lines (``method``, ``url``, ``header`` of lists, ``body`` in base64), which
:func:`requests_file` turns into the raw HTTP/1.1 requests the generator sends in turn. :func:`report` reads the
generator's per-request lines back into the figures the benchmarks keep.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SOURCE = Path(__file__).with_name("loadgen.c")
TIMEOUT_S = 5.0
MAX_CONNECTIONS = 2000


def build(cache_dir: Path) -> Path:
    """The generator's binary for this source, compiled into ``cache_dir/tools`` once (keyed by the source's hash)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = cache_dir / "tools" / f"loadgen-{digest}" / "loadgen"
    if binary.is_file():
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("the serving benchmarks build their load generator (bench/loadgen.c) with a C compiler, "
                           "and none is installed: apt-get install -y gcc")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    built = subprocess.run([compiler, "-O2", "-Wall", "-o", str(partial), str(SOURCE)], capture_output=True,
                           text=True)
    if built.returncode != 0:
        raise RuntimeError(f"{compiler} could not build bench/loadgen.c:\n{built.stderr}")
    partial.replace(binary)
    return binary


def raw_request(target: dict[str, Any]) -> bytes:
    """One target (vegeta's JSON form) as the HTTP/1.1 request the generator writes, keep-alive."""
    url = urlsplit(target["url"])
    if url.scheme != "http" or not url.hostname:
        raise ValueError(f"the load generator speaks plain HTTP to one host, not {target['url']!r}")
    body = base64.b64decode(target["body"]) if target.get("body") else b""
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    lines = [f"{target.get('method', 'GET')} {path} HTTP/1.1", f"Host: {url.netloc}"]
    for name, values in target.get("header", {}).items():
        lines.extend(f"{name}: {value}" for value in values)
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def requests_file(targets: Path, into: Path) -> tuple[str, int]:
    """Write the targets of a JSON-lines file as the generator's input (each request as a 4-byte little-endian
    length and its bytes); the host and port they all go to."""
    hosts = set()
    with into.open("wb") as out:
        for line in targets.read_text().splitlines():
            if not line.strip():
                continue
            target = json.loads(line)
            url = urlsplit(target["url"])
            hosts.add((url.hostname, url.port or 80))
            request = raw_request(target)
            out.write(len(request).to_bytes(4, "little") + request)
    if len(hosts) != 1:
        raise ValueError(f"{targets}: the targets must all go to one host and port, not {sorted(hosts)}")
    host, port = hosts.pop()
    return str(host), port


def _quantile(ordered: list[int], fraction: float) -> int:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0


def report(lines: list[str]) -> dict[str, Any]:
    """The figures of one run from the generator's lines (``due_ns sent_ns latency_ns status``), in vegeta's
    report's names: latencies in ns from each request's due time, ``rate`` as sent, ``throughput`` as answered
    with a 2xx per second until the last answer, ``success`` the 2xx share; and how late the sends were."""
    rows = [tuple(int(field) for field in line.split()) for line in lines if line.strip()]
    if not rows:
        raise ValueError("the load generator reported no requests")
    latencies = sorted(row[2] for row in rows if row[2] >= 0)
    late = sorted(row[1] - row[0] for row in rows if row[1] >= 0)
    statuses = Counter(str(row[3]) for row in rows)
    ok = sum(1 for row in rows if 200 <= row[3] < 300)
    sent = [row[1] for row in rows if row[1] >= 0]
    span_s = (max(sent) - min(sent)) / 1e9 if len(sent) > 1 else 0.0
    end_s = max((row[0] + row[2] for row in rows if row[3] > 0), default=0) / 1e9
    return {
        "requests": len(rows),
        "latencies": {"50th": _quantile(latencies, 0.5), "90th": _quantile(latencies, 0.9),
                      "99th": _quantile(latencies, 0.99), "max": latencies[-1] if latencies else 0,
                      "mean": round(sum(latencies) / len(latencies)) if latencies else 0},
        "rate": (len(sent) - 1) / span_s if span_s > 0 else 0.0,
        "throughput": ok / end_s if end_s > 0 else 0.0,
        "success": ok / len(rows),
        "status_codes": dict(statuses),
        "send_lateness": {"99th": _quantile(late, 0.99), "max": late[-1] if late else 0},
    }


def run_lines(binary: Path, targets: Path, rate: int, seconds: float, *, timeout_s: float = TIMEOUT_S,
              max_connections: int = MAX_CONNECTIONS) -> list[str]:
    """Send ``targets`` (JSON lines) at ``rate`` per second for ``seconds``; the generator's line per request."""
    with tempfile.TemporaryDirectory() as tmp:
        requests, results = Path(tmp) / "requests.bin", Path(tmp) / "results.txt"
        host, port = requests_file(targets, requests)
        done = subprocess.run([str(binary), host, str(port), str(rate), str(seconds), str(requests), str(results),
                               str(timeout_s), str(max_connections)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the load generator failed ({done.returncode}): {done.stderr.strip()}")
        return results.read_text().splitlines()


def run(binary: Path, targets: Path, rate: int, seconds: float, *, timeout_s: float = TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS) -> dict[str, Any]:
    """:func:`report` of :func:`run_lines`."""
    return report(run_lines(binary, targets, rate, seconds, timeout_s=timeout_s, max_connections=max_connections))

"""The serving API under load: p50/p99 and throughput per route at fixed request rates, against raw Redis GETs.

The API runs as `reelytics up` runs it (one uvicorn worker, uvloop, httptools) over the embedded Redis, with
views seeded as the layers write them (batch versions published, speed keys in their layout) for
:data:`USERS` users. The load comes from :mod:`bench.loadgen`, an open-loop generator that keeps its schedule: it
sends at the rate asked whatever the answers' latency, so queueing shows in the tail instead of slowing the sender
down, and it times each answer from the request's due time. One step of resume at 2,000/s is also driven by
vegeta (when ``infra/install.sh`` built it), the generator used before, for comparison. Each route is driven for
:data:`STEP_SECONDS` at 500 and at 2,000 requests/s over many ids; the raw redis-py GET is timed in the same run,
one call at a time on one connection.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.harness import BenchContext, Outcome, benchmark
from infra import redis as embedded_redis
from infra.process import free_port
from serving import http_protocol
from serving.api.auth import create_key
from serving.api.service import API
from warehouse_models.settings import Settings

USERS = 10_000
TITLES = 400
RATES = (500, 2000)
STEP_SECONDS = 10
RAMP = (3000, 4000, 6000, 8000, 12000)
"""Rates tried after 2,000/s for the resume GET, until it misses a target."""
GET_RATIO_TARGET = 8.0
AUTHORIZE_TARGET_MS = 5.0
VEGETA_VERSION = "v12.13.0"


def _vegeta(settings: Settings) -> str | None:
    built = settings.cache_dir / "tools" / f"vegeta-{VEGETA_VERSION}" / "vegeta"
    return str(built) if built.is_file() else shutil.which("vegeta")


def _seed(settings: Settings) -> dict[str, Any]:
    """Views for USERS users as the layers write them: a published batch version and speed keys."""
    from batch_layer.publish.versioned import publish_version
    from speed_layer.resume import set_if_newer
    from warehouse_models.metrics.engagement import minute_field
    from warehouse_models.redis_keys import HOUR_SECONDS, SPEED_BUCKET_TTL_SECONDS, bucket_start

    client, keys = settings.redis_client(), settings.keys
    now = time.time()
    watermark = int(now // 3600 * 3600) - 3600
    rng = random.Random(7)
    users = [f"usr-{i:05d}" for i in range(USERS)]
    titles = [f"vod-{i:05d}" for i in range(TITLES)]
    publish_version(client, keys, {
        "user_totals": lambda v: ((keys.batch_user_totals(v, u), {"watch_seconds": rng.randrange(10_000),
                                                                   "events": rng.randrange(2_000),
                                                                   "clicks": rng.randrange(100)}) for u in users),
        "ctr": lambda v: ((keys.batch_ctr(v, f"rail-{r}", "tile"), {f"{t}:{c}": rng.randrange(1, 500)
                                                                   for t in titles[:20] for c in ("impressions",
                                                                                                  "clicks")})
                          for r in range(10)),
    }, watermark=watermark)
    pipe = client.pipeline(transaction=False)
    for i, user in enumerate(users):
        # Engagement since W as the speed layer leaves it: a window every 5 minutes in its minute bucket, and the
        # hourly aggregates of the same windows with their index of minutes.
        hours: dict[int, dict[str, int]] = {}
        for minute in range(0, int(now - watermark) // 60, 5):
            bucket = bucket_start(watermark + minute * 60)
            pipe.hset(keys.user_engagement_bucket(user, bucket), mapping={f"{bucket}:watch_seconds": 10,
                                                                          f"{bucket}:events": 2})
            pipe.expire(keys.user_engagement_bucket(user, bucket), SPEED_BUCKET_TTL_SECONDS)
            hourly = hours.setdefault(bucket_start(bucket, HOUR_SECONDS), {"watch_seconds": 0, "events": 0})
            hourly["watch_seconds"] += 10
            hourly["events"] += 2
            hourly[minute_field(bucket)] = 2
        for hour, mapping in hours.items():
            pipe.hset(keys.user_engagement_hour(user, hour), mapping=mapping)
            pipe.expire(keys.user_engagement_hour(user, hour), SPEED_BUCKET_TTL_SECONDS)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    for rail in range(10):  # CTR since W: the hourly aggregates of rail-<n>/tile
        for hour in range(watermark, int(now) + 1, HOUR_SECONDS):
            client.hset(keys.ctr_hour(f"rail-{rail}", "tile", hour),
                        mapping={f"{t}:{c}": rng.randrange(1, 50) for t in titles[:20] for c in ("impressions",
                                                                                                 "clicks")})
    positions = {u: {titles[rng.randrange(TITLES)]: (int(now * 1000) - rng.randrange(3_600_000),
                                                     float(rng.randrange(7200)))} for u in users}
    set_if_newer(client, keys, positions)
    client.zadd(keys.trending("vod"), {t: rng.randrange(1, 1000) for t in titles})
    client.hset(keys.account_plan_limits(), mapping={f"acc-{i:05d}": 3 for i in range(USERS)})
    client.set("bench:raw", b"x" * 64)
    return {"users": users, "positions": positions, "titles": titles}


REWRITE_WAIT_S = 120.0


def _persistence(client: Any) -> dict[str, int]:
    """The append-only file's rewrite count and the last fork's cost, from ``INFO persistence`` and ``stats``."""
    info = {**client.info("persistence"), **client.info("stats")}
    return {"aof_enabled": int(info.get("aof_enabled", 0)), "aof_rewrites": int(info.get("aof_rewrites", 0)),
            "latest_fork_usec": int(info.get("latest_fork_usec", 0))}


def _rewrite_after_seed(ctx: BenchContext, client: Any) -> None:
    """Rewrite Redis' append-only file once the views are seeded, and wait for the rewrite to end.

    The seed writes about a million keys in seconds. Left alone, Redis rewrites its append-only file when the file
    has doubled, which the seed guarantees some time later: a fork and a child writing the whole data set on a core
    the API and the load generator share, inside whichever step it falls in. That is the seed's cost, not the
    routes'; a rewrite the steps' own writes cause still counts (``redis_aof_rewrites_during_steps``).
    """
    if not _persistence(client)["aof_enabled"]:
        return
    deadline = time.monotonic() + REWRITE_WAIT_S
    started = False
    while time.monotonic() < deadline:
        info = client.info("persistence")
        busy = int(info.get("aof_rewrite_in_progress", 0)) or int(info.get("aof_rewrite_scheduled", 0)) \
            or int(info.get("rdb_bgsave_in_progress", 0))
        if not busy and started:
            ctx.progress("append-only file rewritten after the seed (fork %.1f ms)",
                         _persistence(client)["latest_fork_usec"] / 1000)
            return
        if not busy:
            client.bgrewriteaof()
            started = True
        time.sleep(0.1)
    raise RuntimeError(f"Redis did not finish rewriting its append-only file in {REWRITE_WAIT_S:g} s")


def _clear(settings: Settings) -> None:
    """Delete the benchmark's keys (its own prefix): a million of them would slow every SCAN after it."""
    client = settings.redis_client()
    batch: list[Any] = []
    for name in client.scan_iter(match=settings.keys.pattern(), count=10_000):
        batch.append(name)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


STALL_NAP_S, STALL_THRESHOLD_MS = 0.0005, 0.3
"""The machine-stall probe's sleep, and how much longer than it a sleep must take to count as a stall."""


def stall_summary(naps: int, stalls: list[tuple[float, float]], seconds: float) -> dict[str, Any]:
    """What the stall probe saw: ``stalls`` as (seconds from the start, ms beyond the nap) of each late wake-up."""
    lengths = sorted(ms for _, ms in stalls)
    gaps = sorted(b - a for (a, _), (b, _) in zip(stalls, stalls[1:], strict=False))
    return {"seconds": round(seconds, 2), "naps": naps, "stalls": len(stalls),
            "stalls_per_s": round(len(stalls) / seconds, 2) if seconds else 0.0,
            "stall_ms_p50": round(lengths[len(lengths) // 2], 3) if lengths else 0.0,
            "stall_ms_max": round(lengths[-1], 3) if lengths else 0.0,
            "stall_ms_total": round(sum(lengths), 2),
            "median_interval_s": round(gaps[len(gaps) // 2], 3) if gaps else None,
            "at_s": [round(at, 3) for at, _ in stalls[:60]]}


def _machine_stalls(seconds: float) -> dict[str, Any]:
    """Sleep :data:`STALL_NAP_S` again and again for ``seconds`` on the otherwise idle machine, and keep each
    wake-up that came more than :data:`STALL_THRESHOLD_MS` late: times when nothing on this machine ran.

    An open-loop run at 2,000/s meets every such stall with the requests due during it (and those queued behind
    them), while a closed-loop timing such as the raw GET's meets it with one call: stalls that are rare in time
    can make a 2,000/s run's p99 and leave the raw GET's untouched.
    """
    stalls: list[tuple[float, float]] = []
    naps = 0
    started = time.perf_counter()
    while (now := time.perf_counter()) - started < seconds:
        time.sleep(STALL_NAP_S)
        over_ms = (time.perf_counter() - now - STALL_NAP_S) * 1000
        naps += 1
        if over_ms > STALL_THRESHOLD_MS:
            stalls.append((now - started, over_ms))
    return stall_summary(naps, stalls, time.perf_counter() - started)


def _redis_get_latency(settings: Settings, *, calls: int) -> dict[str, float]:
    """Raw redis-py GETs of one key, one after another on one connection (the floor any route stands on)."""
    client = settings.redis_client()
    client.get("bench:raw")
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        client.get("bench:raw")
        samples.append(time.perf_counter_ns() - started)
    samples.sort()
    return {"p50_ms": samples[len(samples) // 2] / 1e6, "p99_ms": samples[int(len(samples) * 0.99)] / 1e6,
            "mean_ms": statistics.fmean(samples) / 1e6}


def _targets(base: str, key: str, route: str, seeded: dict[str, Any], count: int = 5000) -> list[dict[str, Any]]:
    rng = random.Random(route)
    headers = {"X-API-Key": [key]}
    out = []
    for _ in range(count):
        user = seeded["users"][rng.randrange(USERS)]
        if route == "resume":
            title = next(iter(seeded["positions"][user]))
            out.append({"method": "GET", "url": f"{base}/v1/users/{user}/resume/{title}", "header": headers})
        elif route == "engagement":
            out.append({"method": "GET", "url": f"{base}/v1/users/{user}/engagement", "header": headers})
        elif route == "trending":
            out.append({"method": "GET", "url": f"{base}/v1/trending?kind=vod", "header": headers})
        elif route == "ctr":
            out.append({"method": "GET", "url": f"{base}/v1/ctr/rail-{rng.randrange(10)}/tile", "header": headers})
        elif route == "authorize":
            account = f"acc-{rng.randrange(USERS):05d}"
            body = json.dumps({"account_id": account, "session_id": f"s-{rng.randrange(4)}", "device_type": "tv"})
            out.append({"method": "POST", "url": f"{base}/v1/playback/authorize", "body":
                        base64.b64encode(body.encode()).decode(),
                        "header": {**headers, "Content-Type": ["application/json"]}})
    return out


COOL_DOWN_S = 3.0
"""Pause after each run, so a backlog an overloaded step left does not count against the next one."""
SETTLED_MS, SETTLED_PROBES, SETTLE_TIMEOUT_S = 5.0, 5, 120.0
"""After the pause, a run starts once the server has answered ``SETTLED_PROBES`` probes in a row within
``SETTLED_MS``: requests of an overloaded step that the load generator gave up on (its 5 s timeout) can still be
queued in the server after it exits, and be answered during the next step."""


def _settle(targets: Path) -> float:
    """Seconds until the server of ``targets`` answers a ``/healthz`` probe fast again (any status: the floor
    servers answer any path)."""
    import httpx

    base = "/".join(json.loads(targets.read_text().split("\n", 1)[0])["url"].split("/")[:3])
    started, fast = time.monotonic(), 0
    with httpx.Client(timeout=10) as client:
        while fast < SETTLED_PROBES and time.monotonic() - started < SETTLE_TIMEOUT_S:
            probe = time.perf_counter()
            try:
                client.get(f"{base}/healthz")
                quick = (time.perf_counter() - probe) * 1000 < SETTLED_MS
            except httpx.HTTPError:  # no answer is not an idle server
                quick = False
            fast = fast + 1 if quick else 0
            time.sleep(0.05)
    return round(time.monotonic() - started, 2)


class Meters:
    """CPU seconds of the server, Redis and the load generator over one run, and what the machine took from them.

    ``steal_ms`` is CPU time the hypervisor gave other guests while this machine wanted it (``/proc/stat``);
    ``cpu_pressure_ms`` is the time at least one runnable task waited for a core (``/proc/pressure/cpu``, the
    kernel's PSI "some" line). Both cover the whole machine, so they say whether a run's tail came from the
    cores being busy or taken away rather than from the route itself.
    """

    def __init__(self, server_pid: int | None, redis_client: Any) -> None:
        self.server_pid, self.redis_client = server_pid, redis_client

    def _read(self) -> dict[str, float]:
        import os
        import resource

        import psutil

        found: dict[str, float] = {}
        if self.server_pid is not None:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(self.server_pid).cpu_times()
                found["server"] = times.user + times.system
        cpu = self.redis_client.info("cpu")
        found["redis"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        found["loadgen"] = children.ru_utime + children.ru_stime
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
            found["steal"] = int(fields[8]) / os.sysconf("SC_CLK_TCK")
        with contextlib.suppress(OSError, IndexError, ValueError, StopIteration):
            some = next(line for line in Path("/proc/pressure/cpu").read_text().splitlines() if line.startswith("some"))
            found["pressure"] = int(some.rsplit("total=", 1)[1]) / 1e6
        return found

    def around(self, run: Any, requests: int) -> dict[str, Any]:
        """``run()``'s report with the CPU microseconds per request of each process and the machine's figures."""
        before = self._read()
        report: dict[str, Any] = run()
        after = self._read()
        spent = {name: after[name] - before[name] for name in after if name in before}
        report["cpu_us_per_request"] = {name: round(spent[name] / max(requests, 1) * 1e6, 1)
                                        for name in ("server", "redis", "loadgen") if name in spent}
        report["steal_ms"] = round(spent["steal"] * 1000, 1) if "steal" in spent else None
        report["cpu_pressure_ms"] = round(spent["pressure"] * 1000, 1) if "pressure" in spent else None
        return report


def _attack(generator: Path, targets: Path, rate: int, seconds: int, meters: Meters | None = None, *,
            vegeta: str | None = None) -> dict[str, Any]:
    """One constant-rate run once the server is idle again (``settle_s``: how long that took after the pause):
    :func:`bench.loadgen.report` of the run (latencies in ns), or vegeta's JSON report when ``vegeta`` is given,
    with the :class:`Meters` of the run when given."""
    time.sleep(COOL_DOWN_S)
    settled = _settle(targets)

    def one() -> dict[str, Any]:
        return _vegeta_run(vegeta, targets, rate, seconds) if vegeta else loadgen.run(generator, targets, rate,
                                                                                       seconds)

    found = meters.around(one, rate * seconds) if meters is not None else one()
    found["settle_s"] = settled
    return found


def _vegeta_run(vegeta: str, targets: Path, rate: int, seconds: int) -> dict[str, Any]:
    attack = subprocess.Popen([vegeta, "attack", "-format=json", f"-targets={targets}", f"-rate={rate}/s",
                               f"-duration={seconds}s", "-timeout=5s", "-max-workers=2000", "-keepalive=true"],
                              stdout=subprocess.PIPE)
    report = subprocess.run([vegeta, "report", "-type=json"], stdin=attack.stdout, capture_output=True, check=True)
    attack.wait()
    found: dict[str, Any] = json.loads(report.stdout)
    return found


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    latencies = report["latencies"]
    found = {"p50_ms": round(latencies["50th"] / 1e6, 3), "p99_ms": round(latencies["99th"] / 1e6, 3),
             "max_ms": round(latencies["max"] / 1e6, 3), "throughput_rps": round(report["throughput"], 1),
             "rate_rps": round(report["rate"], 1), "success": report["success"],
             "status_codes": report.get("status_codes", {}), "settle_s": report["settle_s"]}
    if "send_lateness" in report:
        found["send_late_p99_ms"] = round(report["send_lateness"]["99th"] / 1e6, 3)
        found["send_late_max_ms"] = round(report["send_lateness"]["max"] / 1e6, 3)
    return {**found,
            **{name: report[name] for name in ("cpu_us_per_request", "steal_ms", "cpu_pressure_ms") if name in report}}


STEAL_SHARE_LIMIT, STEAL_ATTEMPTS = 0.01, 3
"""A step during which the hypervisor gave this machine's CPU to other guests for more than this share of the step
(``steal_ms``) is run again, up to :data:`STEAL_ATTEMPTS` times in all."""


def _steal_within_limit(attempt: dict[str, Any], seconds: float) -> bool:
    return attempt.get("steal_ms") is None or attempt["steal_ms"] <= STEAL_SHARE_LIMIT * seconds * 1000


def pick_attempt(attempts: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The step's figures from its attempts: the first whose steal stayed within :data:`STEAL_SHARE_LIMIT` of the
    step, else the one with the least steal; every attempt's p99 and steal kept beside it when there were several.
    The choice looks only at steal, which the hypervisor decides, never at the latencies."""
    clean = [a for a in attempts if _steal_within_limit(a, seconds)]
    chosen = clean[0] if clean else min(attempts, key=lambda a: a["steal_ms"])
    if len(attempts) == 1:
        return chosen
    return {**chosen, "attempts": [{"p99_ms": a["p99_ms"], "steal_ms": a.get("steal_ms"), "chosen": a is chosen}
                                   for a in attempts]}


def _step(generator: Path, targets: Path, rate: int, seconds: int, meters: Meters, *,
          vegeta: str | None = None) -> dict[str, Any]:
    """One measured step (:func:`_attack` with :class:`Meters`), run again while the hypervisor took the machine
    away during it (:func:`pick_attempt`)."""
    attempts: list[dict[str, Any]] = []
    while len(attempts) < STEAL_ATTEMPTS:
        attempts.append(_figures(_attack(generator, targets, rate, seconds, meters, vegeta=vegeta)))
        if _steal_within_limit(attempts[-1], seconds):
            break
    return pick_attempt(attempts, seconds)


FLOORS = {
    "asgi": "a bare ASGI app on the same uvicorn (uvloop, the API's httptools protocol), one HGET on the API's Redis "
            "client",
    "protocol": "no ASGI server: an asyncio protocol on uvloop, httptools' parser, the same HGET, one write per answer",
    "no_redis": "the same protocol answering a fixed body at once: the load generator, loopback and one event loop",
}
"""The floor servers of :mod:`bench.serving_floor`, each driven like the API's resume route."""


def _floor(ctx: BenchContext, settings: Settings, generator: Path, key: str, seeded: dict[str, Any], tmp: Path,
           seconds: int, name: str) -> dict[str, Any]:
    """The resume GET at 2,000/s against one of :data:`FLOORS` (the API stopped, the same port and targets)."""
    import os
    import sys

    host, port = settings.serving_host, settings.serving_port
    env = {**os.environ, "REELYTICS_BENCH_REDIS_URL": settings.redis_url,
           "REELYTICS_BENCH_KEY_PREFIX": settings.redis_key_prefix}
    if name == "asgi":
        command = ["-m", "uvicorn", "bench.serving_floor:app", "--host", host, "--port", str(port), "--loop",
                   "uvloop", "--http", http_protocol.PROTOCOL, "--log-level", "warning", "--no-access-log"]
    else:
        command = ["-m", "bench.serving_floor", "--mode", name, "--host", host, "--port", str(port)]
    server = subprocess.Popen([sys.executable, *command], env=env)
    try:
        base = f"http://{host}:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                import httpx

                httpx.get(f"{base}/v1/users/x/resume/y", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the {name} floor server did not start") from None
                time.sleep(0.2)
        path = tmp / f"floor-{name}.jsonl"
        path.write_text("\n".join(json.dumps(t) for t in _targets(base, key, "resume", seeded)))
        _attack(generator, path, 200, 2)
        result = _step(generator, path, 2000, seconds, Meters(server.pid, settings.redis_client()))
        ctx.progress("floor %s at 2000/s: p50 %.2f ms, p99 %.2f ms, success %.4f", name, result["p50_ms"],
                     result["p99_ms"], result["success"])
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


@benchmark("serving", packages=("fastapi", "starlette", "uvicorn", "redis", "hiredis", "pydantic"))
def measure_serving(ctx: BenchContext) -> Outcome:
    """Serving API latency and throughput per route at 500 and 2,000 requests/s, against raw Redis GETs."""
    settings = ctx.settings.model_copy(update={"redis_key_prefix": "bench-serving", "serving_port": free_port()})
    embedded_redis.start(settings)
    generator, vegeta = loadgen.build(settings.cache_dir), _vegeta(settings)
    client = settings.redis_client()
    _clear(settings)
    seconds = 3 if ctx.quick else STEP_SECONDS
    ctx.progress("seeding views for %d users", USERS)
    seeded = _seed(settings)
    _rewrite_after_seed(ctx, client)
    persistence = _persistence(client)
    # The load generator's key carries its own rate: the default per-key limit would refuse most of the load.
    key = create_key(client, settings.keys, name="bench-load", scopes=["read", "playback"], rate_per_second=1e6)
    routes: dict[str, dict[str, Any]] = {}
    notes: dict[str, Any] = {"users": USERS, "step_seconds": seconds, "load_generator": "bench/loadgen.c (open loop, "
                             "latency from each request's due time)",
                             "api_workers": 1}
    try:
        ctx.progress("starting the API: %s", API.start(settings))
        redis_get = _redis_get_latency(settings, calls=5_000 if ctx.quick else 20_000)
        ctx.progress("raw redis-py GET: p50 %.3f ms, p99 %.3f ms", redis_get["p50_ms"], redis_get["p99_ms"])
        stalls = _machine_stalls(3.0 if ctx.quick else 10.0)
        ctx.progress("machine stalls (a %.1f ms sleep waking over %.1f ms late), idle machine: %d in %.0f s, "
                     "median %.2f ms, longest %.2f ms, median interval %s s", STALL_NAP_S * 1000, STALL_THRESHOLD_MS,
                     stalls["stalls"], stalls["seconds"], stalls["stall_ms_p50"], stalls["stall_ms_max"],
                     stalls["median_interval_s"])
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for route in ("resume", "engagement", "trending", "ctr", "authorize"):
                path = Path(tmp) / f"{route}.jsonl"
                path.write_text("\n".join(json.dumps(t) for t in _targets(API.url(settings), key, route, seeded)))
                files[route] = path
            _attack(generator, files["resume"], 200, 2)  # warm-up: connections, caches
            meters = Meters(API.pid(settings), client)
            for route, path in files.items():
                for rate in RATES:
                    result = _step(generator, path, rate, seconds, meters)
                    routes.setdefault(route, {})[str(rate)] = result
                    ctx.progress("%s at %d/s: p50 %.2f ms, p99 %.2f ms, %.0f/s answered, success %.4f; CPU µs per "
                                 "request %s; steal %s ms, CPU pressure %s ms", route, rate, result["p50_ms"],
                                 result["p99_ms"], result["throughput_rps"], result["success"],
                                 result.get("cpu_us_per_request"), result.get("steal_ms"),
                                 result.get("cpu_pressure_ms"))
            limit = GET_RATIO_TARGET * redis_get["p99_ms"]
            best = 0
            ramp: dict[str, Any] = {}
            for rate in (*RATES, *RAMP):
                result = routes["resume"].get(str(rate)) or _step(generator, files["resume"], rate, seconds, meters)
                ramp[str(rate)] = result
                if result["p99_ms"] > limit or result["success"] < 0.999 or result["throughput_rps"] < 0.97 * rate:
                    break
                best = rate
            notes["resume_ramp"] = ramp
            if vegeta is not None:
                compared = _step(generator, files["resume"], 2000, seconds, meters, vegeta=vegeta)
                notes["vegeta_resume_2000"] = {**compared, "load_generator": f"vegeta {VEGETA_VERSION}, latency "
                                               "from each actual send"}
                ctx.progress("resume at 2000/s driven by vegeta: p50 %.2f ms, p99 %.2f ms; CPU µs per request %s",
                             compared["p50_ms"], compared["p99_ms"], compared.get("cpu_us_per_request"))
            API.stop(settings)
            notes["redis_aof_rewrites_during_steps"] = _persistence(client)["aof_rewrites"] - \
                persistence["aof_rewrites"]
            floors = {name: _floor(ctx, settings, generator, key, seeded, Path(tmp), seconds, name) for name in FLOORS}
    finally:
        API.stop(settings)
        _clear(settings)
    get_p99 = routes["resume"]["2000"]["p99_ms"]
    figures = {
        "get_p99_ms_at_2000rps": get_p99,
        "redis_get_p99_ms": round(redis_get["p99_ms"], 4),
        "get_p99_over_redis_p99_ratio": round(get_p99 / redis_get["p99_ms"], 2),
        "authorize_p99_ms_at_2000rps": routes["authorize"]["2000"]["p99_ms"],
        "max_rps_within_targets": best,
        "machine_stalls_per_s": stalls["stalls_per_s"],
        "machine_stall_ms_max": stalls["stall_ms_max"],
        "floor_get_p99_ms_at_2000rps": floors["asgi"]["p99_ms"],
        "floor_get_p99_over_redis_p99_ratio": round(floors["asgi"]["p99_ms"] / redis_get["p99_ms"], 2),
        "floor_protocol_get_p99_ms_at_2000rps": floors["protocol"]["p99_ms"],
        "floor_no_redis_p99_ms_at_2000rps": floors["no_redis"]["p99_ms"],
    }
    notes.update({"routes": routes, "redis_get": redis_get, "floors": floors, "machine_stalls": stalls,
                  "floor_servers": {name: f"bench/serving_floor.py: {what}; the resume route's targets and rate"
                                    for name, what in FLOORS.items()},
                  "get_route": "GET /v1/users/{user}/resume/{content}: a latest-value read (one HGET after the key "
                               "check, which is cached per process)"})
    return Outcome(figures=figures, notes=notes, targets={
        "get_p99_over_redis_p99_ratio": f"<= {GET_RATIO_TARGET:g}",
        "authorize_p99_ms_at_2000rps": f"<= {AUTHORIZE_TARGET_MS:g}"})

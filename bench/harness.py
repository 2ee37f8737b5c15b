"""The benchmark registry and runner: every benchmark writes one JSON record of its figures.

A benchmark is a function registered with :func:`benchmark`; it receives a :class:`BenchContext` (the
settings and whether this is a quick run) and returns an :class:`Outcome` (figures, targets, notes and any
versions it learned from the services it talked to). :func:`run` adds the machine and the package versions
and writes ``<out_dir>/<name>.json`` with the keys ``benchmark, when, machine, versions, figures, targets,
notes``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from warehouse_models.settings import Settings, load_settings

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = Path("bench/results")
"""Where results go, relative to the working directory (the repository root when run from there)."""

BENCHMARK_MODULES: tuple[str, ...] = ("bench.baselines", "bench.ingestion", "bench.speed", "bench.batch",
                                     "bench.speed_realtime", "bench.speed_costs", "bench.serving",
                                     "bench.recommendations")
"""Modules whose import registers the built-in benchmarks."""

ALWAYS_REPORTED_PACKAGES: tuple[str, ...] = ("reelytics",)
"""Packages whose version goes into every result."""


@dataclass
class Outcome:
    """What one benchmark measured: figures (numbers only), targets, notes, and service versions."""

    figures: dict[str, float]
    targets: dict[str, str] = field(default_factory=dict)
    """Figure name to a condition such as ``"<= 2.0"`` or ``">= 50000"``; empty for pure baselines."""
    notes: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    """Versions of the services the benchmark talked to (broker, server), added to the package versions."""


@dataclass(frozen=True)
class BenchContext:
    """What a benchmark gets: the settings, the quick flag, and a progress reporter."""

    settings: Settings
    quick: bool = False
    log: logging.Logger = logger
    """The logger of the benchmark's module; progress goes there at INFO."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Scale options given on the command line (e.g. ``events``, ``days``); each benchmark reads its own."""

    def progress(self, message: str, *args: Any) -> None:
        """Report a step of a running benchmark (logged at INFO)."""
        self.log.info(message, *args)


BenchmarkFunc = Callable[[BenchContext], Outcome]


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark."""

    name: str
    func: BenchmarkFunc
    packages: tuple[str, ...]
    """Distribution names whose installed versions are recorded with the result."""

    @property
    def summary(self) -> str:
        """The first line of the function's docstring."""
        doc = (self.func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, *, packages: Sequence[str] = ()) -> Callable[[BenchmarkFunc], BenchmarkFunc]:
    """Register the decorated function as the benchmark ``name``.

    Args:
        name: the name used on the command line and as the result file name.
        packages: distributions whose versions belong in the result (e.g. the client libraries measured).
    """
    if not name or any(ch in name for ch in " /\\"):
        raise ValueError(f"benchmark name {name!r} must be non-empty without spaces or slashes")

    def register(func: BenchmarkFunc) -> BenchmarkFunc:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"benchmark {name!r} is already registered by {existing.func.__module__}")
        _REGISTRY[name] = Benchmark(name, func, tuple(packages))
        return func

    return register


def _load_builtin() -> None:
    for module in BENCHMARK_MODULES:
        importlib.import_module(module)


def registry() -> dict[str, Benchmark]:
    """Every registered benchmark by name (the built-in ones are imported first)."""
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Benchmark:
    """The benchmark ``name``; KeyError naming the known ones otherwise."""
    benchmarks = registry()
    if name not in benchmarks:
        known = ", ".join(benchmarks) or "none"
        raise KeyError(f"no benchmark named {name!r} (known: {known})")
    return benchmarks[name]


# --- what the result records about the machine and the software -------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):  # not Linux, or /proc not mounted
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float:
    import psutil

    return round(psutil.virtual_memory().total / 1024**3, 1)


def machine_info() -> dict[str, Any]:
    """CPU count and model, memory, platform and Python of this machine."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def process_tree_sum(pid: int, measure: Callable[[Any], float]) -> float:
    """The sum of ``measure(psutil.Process)`` over a process and its live descendants (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total: float = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):  # a child that exited between the listing and the reading
            total += measure(proc)
    return total


def _json_number(value: Any) -> float | int | None:
    """A figure as JSON: a number, or null for one the run could not measure (e.g. a latency never observed)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"figures must be numbers or None, got {type(value).__name__}")
    return value


# --- running ---------------------------------------------------------------------------------------------


def run(
    name: str,
    *,
    out_dir: Path = DEFAULT_OUT_DIR,
    quick: bool = False,
    settings: Settings | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the benchmark ``name``, write ``<out_dir>/<name>.json`` and return the record written.

    Args:
        name: a registered benchmark.
        out_dir: directory of the result files (created when missing).
        quick: a smaller run for a smoke test; recorded as ``notes["quick"]``.
        settings: the settings to run against (default: :func:`load_settings`).
        options: scale options for the benchmark (recorded as ``notes["options"]`` when given).
    """
    bench = get(name)
    settings = settings or load_settings()
    options = dict(options or {})
    context = BenchContext(settings=settings, quick=quick, log=logging.getLogger(bench.func.__module__),
                           options=options)
    when = datetime.now(timezone.utc)
    logger.info("benchmark %s: starting%s", name, " (quick)" if quick else "")
    started = time.perf_counter()
    outcome = bench.func(context)
    elapsed = time.perf_counter() - started
    logger.info("benchmark %s: done in %.1f s", name, elapsed)

    versions: dict[str, str | None] = package_versions(ALWAYS_REPORTED_PACKAGES + bench.packages)
    versions.update(outcome.versions)
    record: dict[str, Any] = {
        "benchmark": name,
        "when": when.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions,
        "figures": {key: _json_number(value) for key, value in outcome.figures.items()},
        "targets": dict(outcome.targets),
        "notes": {"quick": quick, "wall_seconds": round(elapsed, 2), **({"options": options} if options else {}),
                  **outcome.notes},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    logger.info("benchmark %s: wrote %s", name, path)
    return record

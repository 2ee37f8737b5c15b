"""Start and stop the speed layer as a background process (what `reelytics speed start` and the demo use)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from infra.process import ManagedProcess
from warehouse_models.settings import Settings, settings_environment

logger = logging.getLogger(__name__)

_PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("speed", settings.run_dir)


def start_speed(settings: Settings, *, names: Sequence[str] | None = None, realtime_resume: bool = False) -> str:
    """Start the speed layer in the background unless it runs already; return what was done.

    ``realtime_resume``: run only the resume view in Spark's real-time mode (:mod:`speed_layer.realtime`).
    """
    proc = _process(settings)
    if proc.running():
        return f"already running (pid {proc.pid()})"
    cmd = [sys.executable, "-m", "speed_layer"]
    if realtime_resume:
        cmd.append("--realtime-resume")
    elif names:
        cmd += ["--views", ",".join(names)]
    pid = proc.start(cmd, env=settings_environment(settings), cwd=_PROJECT_ROOT)
    return f"started (pid {pid}), log {proc.log_path}"


def stop_speed(settings: Settings) -> bool:
    """Stop the background speed layer (its queries continue from their checkpoints next time)."""
    return _process(settings).stop(timeout=60)


def speed_pid(settings: Settings) -> int | None:
    return _process(settings).pid()


def speed_log(settings: Settings) -> Path:
    return _process(settings).log_path

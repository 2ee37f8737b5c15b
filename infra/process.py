"""Start, watch and stop the background processes of the embedded services (PID files under run_dir)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A service could not be started or reached; the message says what to do."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's choice), for a server started next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_owner(port: int) -> str:
    """Best-effort description of the process listening on a port ("pid 123 (java)")."""
    with contextlib.suppress(psutil.Error, OSError):  # listing sockets may need privileges we lack
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    return "another process"


def is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.25,
               alive: Callable[[], bool] | None = None, log_path: Path | None = None) -> None:
    """Poll `check` until it is true; raise ServiceError naming `what` (and the log) on timeout or death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # a service that is still starting refuses connections
            logger.debug("%s not ready yet: %s", what, exc)
        if alive is not None and not alive():
            raise ServiceError(f"{what} exited while starting.{_log_tail(log_path)}")
        time.sleep(interval)
    raise ServiceError(f"{what} was not ready after {timeout:.0f} s.{_log_tail(log_path)}")


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f" Its log ({log_path}) ends with:\n  " + "\n  ".join(tail)


@dataclass
class ManagedProcess:
    """One background process Reelytics started, remembered by a PID file."""

    name: str
    run_dir: Path

    @property
    def pid_path(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The PID of the running process, or None (stale PID files are removed)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return pid
        self.pid_path.unlink(missing_ok=True)
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start `cmd` detached (its own session, output to the log file) and record its PID."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(  # noqa: S603 - our own command line
                list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=full_env, cwd=str(cwd) if cwd else None, start_new_session=True,
            )
        self.pid_path.write_text(str(proc.pid))
        logger.info("started %s (pid %d), log %s", self.name, proc.pid, self.log_path)
        return proc.pid

    def stop(self, *, timeout: float = 30.0) -> bool:
        """SIGTERM the process group, then SIGKILL after `timeout`; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        try:
            psutil.Process(pid).wait(timeout=timeout)
        except psutil.TimeoutExpired:
            logger.warning("%s (pid %d) did not stop in %.0f s; killing it", self.name, pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        except psutil.NoSuchProcess:
            logger.debug("%s (pid %d) had already exited", self.name, pid)
        self.pid_path.unlink(missing_ok=True)
        logger.info("stopped %s (pid %d)", self.name, pid)
        return True

    def kill(self) -> None:
        """SIGKILL the process group at once (fault-injection tests)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.killpg(pid, signal.SIGKILL)
                psutil.Process(pid).wait(timeout=10)
            self.pid_path.unlink(missing_ok=True)

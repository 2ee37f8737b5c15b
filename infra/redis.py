"""The embedded Redis server: Debian's redis-server with `infra/redis.conf`, on loopback."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from infra.process import ManagedProcess, ServiceError, is_loopback, port_in_use, port_owner, wait_until
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 30.0


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("redis", settings.run_dir)


def healthy(settings: Settings) -> bool:
    """True when Redis answers PING with the configured URL and password."""
    host, port = settings.redis_host_port
    if not port_in_use(host, port):
        return False
    client = settings.redis_client()
    try:
        return bool(client.ping())
    except Exception as exc:
        logger.debug("redis ping failed: %s", exc)
        return False
    finally:
        client.close()


def start(settings: Settings) -> str:
    """Start redis-server with the project config unless Redis already answers."""
    if healthy(settings):
        return "already running"
    host, port = settings.redis_host_port
    if not is_loopback(host):
        raise ServiceError(f"Redis at {settings.redis_url} does not answer and is not on this machine; "
                           "check REELYTICS_REDIS_URL and REELYTICS_REDIS_PASSWORD.")
    proc = _process(settings)
    if port_in_use(host, port) and not proc.running():
        raise ServiceError(
            f"Port {port} on {host} is taken by {port_owner(port)}, which does not answer as this Redis (wrong "
            "password?). Stop it (e.g. `service redis-server stop`) or set REELYTICS_REDIS_URL to another port."
        )
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceError("redis-server is not installed: run `bash infra/install.sh` "
                           "(or apt-get install -y redis-server).")
    data = settings.data_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    cmd = [server, str(_HERE / "redis.conf"), "--port", str(port), "--dir", str(data)]
    if settings.redis_password is not None:
        cmd += ["--requirepass", settings.redis_password.get_secret_value()]
    if not proc.running():
        proc.start(cmd)
    wait_until(lambda: healthy(settings), timeout=START_TIMEOUT_S, what=f"Redis on {host}:{port}",
               alive=proc.running, log_path=proc.log_path)
    return f"started (pid {proc.pid()})"


def stop(settings: Settings) -> bool:
    return _process(settings).stop(timeout=20)


def address(settings: Settings) -> str:
    host, port = settings.redis_host_port
    return f"redis://{host}:{port}"


def managed_pid(settings: Settings) -> int | None:
    return _process(settings).pid()

"""``thrifty up`` / ``thrifty down``: the gateway as a supervised background daemon.

    thrifty up ──▶ supervisor (pid file <home>/run/gateway.pid, log <home>/logs/gateway.log)
                      └──▶ gateway process ──▶ replica workers
                           (restarted if it crashes; it rebuilds its replicas from the registry)

``thrifty down`` sends SIGTERM to the supervisor, which passes it on: the gateway stops accepting,
answers the requests in flight, stops its replicas (each drains too), and everything exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from thrifty.errors import ServingError
from thrifty.settings import Settings

log = logging.getLogger("thrifty.serving.daemon")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 45.0
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
#: the gateway process: local replicas and cloud ones (it builds the cloud providers, which
#: serving itself never imports)
GATEWAY_MODULE = "thrifty.providers.front_door"


def pid_file(settings: Settings) -> Path:
    return settings.home / "run" / "gateway.pid"


def log_file(settings: Settings) -> Path:
    return settings.home / "logs" / "gateway.log"


def gateway_url(settings: Settings) -> str:
    return f"http://{settings.gateway_host}:{settings.gateway_port}"


def auth_headers(settings: Settings) -> dict[str, str]:
    tokens = settings.api_tokens
    return {"authorization": f"Bearer {tokens[0].get_secret_value()}"} if tokens else {}


def daemon_pid(settings: Settings) -> int | None:
    """The supervisor's pid when it is running (a stale pid file is removed)."""
    path = pid_file(settings)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return pid


def gateway_live(settings: Settings, timeout_s: float = 1.0) -> bool:
    try:
        return httpx.get(f"{gateway_url(settings)}/v2/health/live", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def start_daemon(settings: Settings, wait: bool = True) -> int:
    """Start the supervisor in the background (idempotent: returns the running one's pid)."""
    running = daemon_pid(settings)
    if running is not None:
        return running
    log_path = log_file(settings)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file(settings).parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, THRIFTY_HOME=str(settings.home))
    with log_path.open("ab") as out:
        # the launcher forks the supervisor off and exits at once: a true daemon, never our zombie
        subprocess.run(
            [sys.executable, "-m", "thrifty.serving.daemon", "--detach"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            check=True,
        )
    if wait:
        _wait_until_live(settings)
    return daemon_pid(settings) or 0


def _wait_until_live(settings: Settings) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    grace = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if gateway_live(settings, 0.5):
            return
        if time.monotonic() > grace and daemon_pid(settings) is None:
            raise ServingError(
                "the gateway daemon exited",
                hint=f"see {log_file(settings)} (is port {settings.gateway_port} taken?)",
            )
        time.sleep(0.1)
    raise ServingError(
        f"the gateway did not answer on {gateway_url(settings)} within {START_TIMEOUT_S:g} s",
        hint=f"see {log_file(settings)}",
    )


def stop_daemon(settings: Settings, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the supervisor and wait for it (drains in-flight requests); False if none ran."""
    pid = daemon_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        pid_file(settings).unlink()
    return True


def notify_gateway(settings: Settings) -> dict[str, object] | None:
    """Ask a running gateway to read the registry now; None when no gateway answers."""
    try:
        response = httpx.post(
            f"{gateway_url(settings)}/admin/reconcile", headers=auth_headers(settings), timeout=30
        )
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def gateway_state(settings: Settings) -> dict[str, object] | None:
    try:
        response = httpx.get(
            f"{gateway_url(settings)}/admin/status", headers=auth_headers(settings), timeout=5
        )
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


# -- the supervisor process ------------------------------------------------------------------
def _write_pid(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(path)


def supervise(settings: Settings) -> int:
    """Run the gateway as a child; restart it when it crashes; pass SIGTERM on and wait."""
    path = pid_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_pid(path)
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    crashes = 0
    try:
        while not stopping:
            child = subprocess.Popen([sys.executable, "-m", GATEWAY_MODULE])
            code = child.wait()
            if stopping or code == 0:
                break
            log.error("gateway exited with %s; restarting from the registry", code)
            time.sleep(RESTART_BACKOFF_S[min(crashes, len(RESTART_BACKOFF_S) - 1)])
            crashes += 1
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    return 0


if __name__ == "__main__":
    from thrifty.settings import get_settings

    if "--detach" in sys.argv and os.fork() > 0:
        os._exit(0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(supervise(get_settings()))

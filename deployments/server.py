"""A local Prefect server, a process work pool, the project's deployments and a worker.

    python -m deployments.server start   # UI at http://127.0.0.1:4200
    python -m deployments.server stop

``start`` is idempotent: a server or worker that is already running is reused. Pid files and logs
live under ``$THRIFTY_HOME/prefect``. The worker is stopped with SIGINT (it ignored SIGTERM for
13 s when this was measured), the server with SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
POOL = "thrifty-process"
BIN = Path(sys.executable).parent


def state_dir() -> Path:
    home = Path(os.environ.get("THRIFTY_HOME", Path.home() / ".thrifty")).expanduser()
    folder = home / "prefect"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def _env(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": api_url(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "THRIFTY_PROJECT_DIR": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that exited: reap it
            return None
    except ChildProcessError:
        pass  # started by another process (e.g. `make server`)
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def _spawn(name: str, args: list[str], port: int) -> int:
    pid_file = state_dir() / f"{name}.pid"
    if (pid := _alive(pid_file)) is not None:
        return pid
    log = (state_dir() / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=_env(port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def wait_healthy(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url(port)}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    log = state_dir() / "server.log"
    raise SystemExit(f"the Prefect server did not answer on port {port} within {timeout_s:.0f} s; see {log}")


def _prefect(args: list[str], port: int) -> None:
    subprocess.run([str(BIN / "prefect"), *args], cwd=ROOT, env=_env(port), check=True)


def start(port: int = 4200, worker: bool = True) -> str:
    _spawn(
        "server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], port
    )
    wait_healthy(port)
    pools = subprocess.run(
        [str(BIN / "prefect"), "work-pool", "ls"], cwd=ROOT, env=_env(port), capture_output=True, text=True
    )
    if POOL not in pools.stdout:
        _prefect(["work-pool", "create", POOL, "--type", "process"], port)
    # the block types show up in the UI's block catalog (targets, credentials, policies)
    modules = [f"blocks.{p.stem}" for p in sorted((ROOT / "blocks").glob("*.py")) if p.stem != "__init__"]
    for module in modules:
        _prefect(["block", "register", "-m", module], port)
    _prefect(["--no-prompt", "deploy", "--all"], port)
    if worker:
        _spawn("worker", [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"], port)
    return f"http://127.0.0.1:{port}"


def stop() -> None:
    for name, sig in (("worker", signal.SIGINT), ("server", signal.SIGTERM)):
        pid_file = state_dir() / f"{name}.pid"
        pid = _alive(pid_file)
        if pid is not None:
            os.killpg(pid, sig)
            for _ in range(100):
                if _alive(pid_file) is None:
                    break
                time.sleep(0.2)
            else:
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("THRIFTY_PREFECT_PORT", "4200")))
    parser.add_argument("--no-worker", action="store_true", help="apply deployments but start no worker")
    args = parser.parse_args()
    if args.action == "stop":
        stop()
        print("stopped the Prefect worker and server")
        return
    url = start(args.port, worker=not args.no_worker)
    print(f"Prefect UI: {url}   (API {api_url(args.port)}; `make server-stop` stops it)")
    print(f"work pool {POOL!r} has a worker; deployments applied from prefect.yaml")


if __name__ == "__main__":
    main()

"""A local Prefect server, a process work pool, the project's deployments and a worker.

    python -m deployments.server start   # UI at http://127.0.0.1:4200
    python -m deployments.server stop

``start`` is idempotent: a server or worker that is already running is reused, the pool is created
only when the API says it is missing, block types, deployments and the automation that routes
``thrifty.anomaly.*`` events to ``THRIFTY_ANOMALY_WEBHOOK_URL`` are (re)applied every time, and it
returns once the worker is online (the API shows its heartbeat). It prints one line per step and a
short summary; what Prefect's own commands print goes to ``$THRIFTY_HOME/prefect/start.log`` (shown
when a step fails). Pid files and logs live under ``$THRIFTY_HOME/prefect``. The worker is stopped
with SIGINT (it ignored SIGTERM for 13 s when this was measured), the server with SIGTERM.

Nothing here parses a table printed for people: the work pool, the worker and the deployments are
read from Prefect's REST API, and the CLI steps are judged by their exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

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


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"{api_url(port)}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _healthy(port):
            return
        time.sleep(0.5)
    log = state_dir() / "server.log"
    raise SystemExit(f"the Prefect server did not answer on port {port} within {timeout_s:.0f} s; see {log}")


def _api(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.request(method, f"{api_url(port)}{path}", json=body, timeout=30.0)


def _quiet(args: list[str], port: int, step: str) -> None:
    """Run one command with its output in start.log; a failure names the step and shows the tail."""
    log = state_dir() / "start.log"
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(args, cwd=ROOT, env=_env(port), stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(
            "\n".join([f"{step} failed (exit {done.returncode}):", *tail, f"full output: {log}"])
        )


def _ensure_server(port: int) -> str:
    if _healthy(port):
        return f"already running on port {port}"
    pid = _spawn(
        "server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], port
    )
    wait_healthy(port)
    return f"started (pid {pid})"


def _ensure_pool(port: int) -> str:
    found = _api(port, "GET", f"/work_pools/{POOL}")
    if found.status_code == 200:
        return "exists"
    if found.status_code != 404:
        raise SystemExit(f"the Prefect API answered {found.status_code} for work pool {POOL}: {found.text}")
    _quiet(
        [str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], port, "creating the pool"
    )
    return "created"


def register_blocks() -> list[str]:
    """Register the block types of blocks/*.py, as `prefect block register -m` does (in one process)."""
    import importlib
    import inspect

    from prefect.blocks.core import Block, InvalidBlockRegistration

    names = []
    for path in sorted((ROOT / "blocks").glob("*.py")):
        if path.stem == "__init__":
            continue
        for _, cls in inspect.getmembers(importlib.import_module(f"blocks.{path.stem}")):
            if cls is not None and Block.is_block_class(cls):
                with contextlib.suppress(InvalidBlockRegistration):
                    cls.register_type_and_schema()
                    names.append(cls.get_block_type_slug())
    return sorted(set(names))


ANOMALY_AUTOMATION = "thrifty-anomaly-alerts"
ANOMALY_WEBHOOK_BLOCK = "thrifty-anomaly-webhook"
#: what the webhook receives: the event's name, the deployment and the detector's payload (baseline,
#: observed, deviation, suggested action, message)
ANOMALY_PAYLOAD = (
    '{"event": {{ event.event | tojson }}, '
    '"deployment": {{ event.resource["thrifty.deployment"] | tojson }}, '
    '"occurred": {{ event.occurred | string | tojson }}, '
    '"anomaly": {{ event.payload | tojson }}}'
)


def register_automations(webhook_url: str | None) -> str:
    """The automation routing ``thrifty.anomaly.*`` events to a webhook (created or updated in place).

    Without a URL nothing is routed (the monitor flow still records every alert: ``thrifty alerts``)
    and an automation left from an earlier start is disabled, not kept firing at an old address.
    """
    from prefect.automations import Automation, CallWebhook, EventTrigger, Posture
    from prefect.blocks.webhook import Webhook
    from pydantic import SecretStr

    try:
        existing = cast("Automation | None", Automation.read(name=ANOMALY_AUTOMATION))
    except ValueError:
        existing = None
    if not webhook_url:
        if existing is not None and existing.enabled:
            existing.disable()
        return "anomaly events are recorded only (set THRIFTY_ANOMALY_WEBHOOK_URL to route them)"
    block = Webhook(url=SecretStr(webhook_url), method="POST", allow_private_urls=True)
    block_id = block.save(ANOMALY_WEBHOOK_BLOCK, overwrite=True)
    automation = Automation(
        name=ANOMALY_AUTOMATION,
        description="thrifty.anomaly.* from the monitor flow → the anomaly webhook",
        enabled=True,
        trigger=EventTrigger(
            expect={"thrifty.anomaly.*"},
            match={"prefect.resource.id": "thrifty.deployment.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=ANOMALY_PAYLOAD)],
    )
    if existing is None:
        automation.create()
    else:
        automation.id = existing.id
        automation.update()
    return f"anomaly events → webhook block {ANOMALY_WEBHOOK_BLOCK}"


def _deployments(port: int) -> list[str]:
    body = {"work_pools": {"name": {"any_": [POOL]}}}
    found = _api(port, "POST", "/deployments/filter", body).raise_for_status().json()
    return sorted(d["name"] for d in found)


def _online_workers(port: int, name: str | None) -> list[str]:
    answer = _api(port, "POST", f"/work_pools/{POOL}/workers/filter", {})
    if answer.status_code != 200:
        return []
    return [w["name"] for w in answer.json() if w.get("status") == "ONLINE" and name in (None, w["name"])]


def _ensure_worker(port: int, timeout_s: float = 120.0) -> str:
    name_file = state_dir() / "worker.name"
    if _alive(state_dir() / "worker.pid") is not None and name_file.exists():
        name = name_file.read_text().strip()
    else:
        name = f"thrifty-{uuid.uuid4().hex[:8]}"
        name_file.write_text(name)
        args = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process", "--name", name]
        _spawn("worker", args, port)
    deadline = time.monotonic() + timeout_s
    while not _online_workers(port, name):
        if _alive(state_dir() / "worker.pid") is None:
            raise SystemExit(f"the worker exited before it came online; see {state_dir() / 'worker.log'}")
        if time.monotonic() > deadline:
            raise SystemExit(
                f"worker {name} was not online after {timeout_s:.0f} s; see {state_dir()}/worker.log"
            )
        time.sleep(0.5)
    return name


def start(port: int = 4200, worker: bool = True, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Server, pool, block types, deployments and (optionally) a worker that is online; a summary."""
    say(f"Prefect server: {_ensure_server(port)}")
    say(f"work pool {POOL}: {_ensure_pool(port)}")
    _quiet(
        [sys.executable, "-m", "deployments.server", "register-blocks", "--port", str(port)], port, "blocks"
    )
    _quiet([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], port, "prefect deploy --all")
    deployments = _deployments(port)
    say(f"deployments: {len(deployments)} applied from prefect.yaml")
    _quiet(
        [sys.executable, "-m", "deployments.server", "register-automations", "--port", str(port)],
        port,
        "automations",
    )
    say(f"automation {ANOMALY_AUTOMATION}: {_automation_state(port)}")
    worker_name = None
    if worker:
        say("worker: waiting until it is online …")
        worker_name = _ensure_worker(port)
    say(f"thrifty API: {_ensure_api(port)}")
    return {"url": f"http://127.0.0.1:{port}", "deployments": deployments, "worker": worker_name}


def _automation_state(port: int) -> str:
    body = {"automations": {"name": {"any_": [ANOMALY_AUTOMATION]}}}
    found = _api(port, "POST", "/automations/filter", body)
    rows = found.json() if found.status_code == 200 else []
    if not rows:
        return "not registered (set THRIFTY_ANOMALY_WEBHOOK_URL to route thrifty.anomaly.* events)"
    return (
        "routes thrifty.anomaly.* to the webhook" if rows[0].get("enabled") else "disabled (no webhook URL)"
    )


def thrifty_api_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('THRIFTY_API_PORT', '8080')}"


def _ensure_api(port: int, timeout_s: float = 60.0) -> str:
    """``thrifty api`` (the management API and dashboard) beside the server, reaching it for flow runs."""
    url, pid_file = thrifty_api_url(), state_dir() / "api.pid"
    if _alive(pid_file) is not None:
        return f"running ({url})"
    _spawn("api", [str(BIN / "thrifty"), "api", "--port", url.rsplit(":", 1)[1]], port)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _alive(pid_file) is None:
            raise SystemExit(f"`thrifty api` exited (is {url} taken?); see {state_dir() / 'api.log'}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/openapi.json", timeout=2.0).status_code == 200:
                return f"started ({url})"
        time.sleep(0.3)
    raise SystemExit(
        f"`thrifty api` did not answer on {url} within {timeout_s:.0f} s; see {state_dir()}/api.log"
    )


def stop() -> None:
    for name, sig in (("api", signal.SIGTERM), ("worker", signal.SIGINT), ("server", signal.SIGTERM)):
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


def _summary(found: dict[str, Any], port: int) -> str:
    worker = f"worker {found['worker']} online" if found["worker"] else "no worker (--no-worker)"
    return "\n".join(
        [
            f"Prefect UI {found['url']}  ·  pool {POOL}: {worker}",
            f"deployments: {', '.join(found['deployments'])}",
            f"from Python or the CLI: export PREFECT_API_URL={api_url(port)}",
            f"thrifty API {thrifty_api_url()}/api/v1 (docs /api/v1/docs)  ·  dashboard {thrifty_api_url()}/",
            f"logs in {state_dir()}  ·  `make server-stop` stops it",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["start", "stop", "register-blocks", "register-automations"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("THRIFTY_PREFECT_PORT", "4200")))
    parser.add_argument("--no-worker", action="store_true", help="apply deployments but start no worker")
    args = parser.parse_args()
    if args.action == "stop":
        stop()
        print("stopped the Prefect worker and server")
    elif args.action == "register-blocks":  # run by `start` in a child with PREFECT_API_URL set
        print("registered block types:", ", ".join(register_blocks()))
    elif args.action == "register-automations":  # likewise, after the deployments
        print(register_automations(os.environ.get("THRIFTY_ANOMALY_WEBHOOK_URL")))
    else:
        try:
            print(_summary(start(args.port, worker=not args.no_worker), args.port))
        except httpx.HTTPError as exc:
            raise SystemExit(f"the Prefect API on port {args.port} failed: {exc}") from None


if __name__ == "__main__":
    main()

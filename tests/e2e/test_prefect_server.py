"""A real local Prefect server, work pool, deployments from prefect.yaml and a worker — as `make server`.

The test starts them with ``python -m deployments.server start`` (THRIFTY_HOME, PREFECT_HOME and the
gateway port point into this test's tmp folder and reach the worker's flow runs through the
environment), registers a tiny ONNX classifier through ``thrifty.client.run_deployment`` (Prefect's
REST API over httpx), triggers ``deploy-model`` with ``prefect.deployments.run_deployment``, waits
for Completed, asks the endpoint for an answer, and stops everything: the worker with SIGINT, the
server with SIGTERM, the gateway daemon, and any process group still alive in ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import free_port
from tests.flows.test_deploy_model import IN_FEATURES, TECHNIQUES, build_classifier, infer, original_logits

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    api_url: str
    env: dict[str, str]
    home: Path


def _run_module(action: str, env: dict[str, str], port: int, timeout_s: float) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "deployments.server", action, "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, f"{action} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def processes_of(home: Path) -> list[int]:
    """Pids of every process started with THRIFTY_HOME=home: server, worker, flow runs, gateway, replicas."""
    marker = f"THRIFTY_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            zombie = " Z " in (entry / "stat").read_text()
        except OSError:
            continue
        if marker in environ and not zombie:
            found.append(int(entry.name))
    return found


def wait_gone(home: Path, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _server_env(home: Path, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "THRIFTY_HOME": str(home),
        "THRIFTY_GATEWAY_PORT": str(free_port()),
        "THRIFTY_API_PORT": str(free_port()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    for var in (
        "THRIFTY_DATABASE_URL",
        "THRIFTY_ARTIFACT_STORE_URL",
        "THRIFTY_API_TOKENS",
        "PREFECT_API_URL",
    ):
        env.pop(var, None)
    return env


@pytest.fixture
def prefect_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    from thrifty import runtime
    from thrifty.serving.daemon import stop_daemon
    from thrifty.settings import get_settings

    home = tmp_path / "thrifty-home"
    port = free_port()
    env = _server_env(home, tmp_path)
    for var in ("THRIFTY_HOME", "THRIFTY_GATEWAY_PORT"):
        monkeypatch.setenv(var, env[var])
    runtime.reset()
    try:
        _run_module("start", env, port, timeout_s=300)  # + `thrifty api` beside it
        yield Server(f"http://127.0.0.1:{port}/api", env, home)
        _run_module("stop", env, port, timeout_s=60)
        stop_daemon(get_settings())
        assert wait_gone(home, timeout_s=20) == [], "processes left after stop"
    finally:
        _kill(processes_of(home))  # a test that failed half-way leaves nothing behind either
        runtime.reset()


@pytest.mark.slow
def test_worker_runs_deploy_model_triggered_from_python(prefect_server: Server, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from thrifty import runtime
    from thrifty.client import run_deployment as client_run_deployment
    from thrifty.serving.daemon import daemon_pid
    from thrifty.settings import get_settings

    model = build_classifier(tmp_path / "tiny.onnx")

    # thrifty's own httpx client: register the model through the ingest-model deployment
    ingested = client_run_deployment(
        "ingest-model/ingest-model",
        {"params": {"path": str(model), "name": "tiny"}},
        api_url=prefect_server.api_url,
        timeout_s=300,
    )
    assert ingested.ok, ingested.state_message
    assert runtime.registry().get_model_version("tiny").format == "onnx"

    # Prefect's run_deployment: deploy the registered model by name and wait for the run
    params = {
        "model": "tiny",
        "p95_ms": 1000.0,
        "rps": 5.0,
        "techniques": TECHNIQUES,
        "bench_runs": 5,
        "target": "local",
    }
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        flow_run = run_deployment("deploy-model/deploy-model", parameters={"params": params}, timeout=360)
    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state

    row = runtime.registry().get_deployment("tiny")
    assert row.state == "running"
    x = np.random.default_rng(3).standard_normal((2, IN_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(
        infer(row.endpoint_url, x), original_logits(model, x), rtol=1e-2, atol=1e-2
    )  # fp16 may win
    # the gateway belongs to this test's THRIFTY_HOME (the worker's flow run saw its environment)
    assert daemon_pid(get_settings()) is not None

    # registering the model also fired the event trigger (thrifty.model.registered → deploy-model);
    # the deployment's concurrency limit runs the two one after the other, and both converge on
    # the one deployment
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        runs = wait_final_runs("deploy-model", count=2, timeout_s=240)
    assert sorted(r.state_name for r in runs) == ["Completed", "Completed"], runs
    triggered = [r for r in runs if r.id != flow_run.id]
    assert triggered[0].parameters == {"params": {"model": "tiny"}}  # the model name from the event
    assert [d.name for d in runtime.registry().list_deployments()] == ["tiny"]
    row = runtime.registry().get_deployment("tiny")
    np.testing.assert_allclose(
        infer(row.endpoint_url, x), original_logits(model, x), rtol=1e-2, atol=1e-2
    )  # fp16 may win

    # the management API `make server` started beside it: the same deploy as an operation, polled
    import thrifty

    with thrifty.Client(f"http://127.0.0.1:{prefect_server.env['THRIFTY_API_PORT']}") as api:
        assert api.deployment("tiny").state == "running"
        op = api.deploy("tiny", parameters={k: v for k, v in params.items() if k != "model"})
        done = api.wait(op.id, timeout_s=300, poll_s=1.0)
        assert (done.state, done.ok) == ("COMPLETED", True), done.message
        # the worker ships a run's logs to Prefect in batches: they may land a few seconds after the end
        deadline = time.monotonic() + 30
        while not any("tiny" in line["message"] for line in api.operation_logs(op.id)):
            assert time.monotonic() < deadline, api.operation_logs(op.id)
            time.sleep(1.0)
    row = runtime.registry().get_deployment("tiny")
    np.testing.assert_allclose(
        infer(row.endpoint_url, x), original_logits(model, x), rtol=1e-2, atol=1e-2
    )  # fp16 may win


def wait_final_runs(flow_name: str, count: int, timeout_s: float) -> list[Any]:
    """The flow's runs once ``count`` of them exist and all are in a final state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
            if len(runs) >= count and all(r.state and r.state.is_final() for r in runs):
                return runs
            assert time.monotonic() < deadline, [(r.name, r.state_name) for r in runs]
            time.sleep(1.0)


def _ready(port: int) -> dict[str, Any]:
    """What the API says, not what server.py printed: health, the pool, online workers, deployments."""
    import httpx

    api = f"http://127.0.0.1:{port}/api"
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200
    pool = httpx.get(f"{api}/work_pools/thrifty-process", timeout=10).raise_for_status().json()
    workers = httpx.post(f"{api}/work_pools/thrifty-process/workers/filter", json={}, timeout=10)
    deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).raise_for_status().json()
    return {
        "pool_type": pool["type"],
        "online": sorted(w["name"] for w in workers.raise_for_status().json() if w["status"] == "ONLINE"),
        "deployments": sorted(d["name"] for d in deployments),
    }


def _quiet_summary(output: str) -> None:
    lines = output.strip().splitlines()
    # it was 211 lines, Prefect's "start a worker" advice 7 times; now one line per step + 5 of summary
    assert len(lines) <= 12, output
    assert "start a worker" not in output and "Traceback" not in output, output
    (ui,) = [line for line in lines if line.startswith("Prefect UI ")]
    assert "online" in ui and "PREFECT_API_URL=" in output, output
    assert any(line.startswith("thrifty API ") and "dashboard" in line for line in lines[-5:]), output


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_start_twice_and_start_stop_start(tmp_path: Path) -> None:
    """`make server` twice, then `make server-stop` and again: server, worker and deployments each time."""
    import yaml

    from thrifty.client import run_deployment

    home = tmp_path / "thrifty-home"
    env, port = _server_env(home, tmp_path), free_port()
    expected = sorted(d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"])
    try:
        _quiet_summary(_run_module("start", env, port, timeout_s=400))
        first = _ready(port)
        assert first["pool_type"] == "process" and first["deployments"] == expected
        assert len(first["online"]) == 1, first

        # a second start reuses the running server and worker, re-applies the deployments
        again = _run_module("start", env, port, timeout_s=400)
        _quiet_summary(again)
        assert "already running" in again and _ready(port) == first

        _run_module("stop", env, port, timeout_s=120)
        assert wait_gone(home, timeout_s=30) == [], "processes left after stop"

        # start → stop → start: the server's database still has the pool; a new worker comes online
        _quiet_summary(_run_module("start", env, port, timeout_s=400))
        after = _ready(port)
        assert after["deployments"] == expected and after["pool_type"] == "process"
        assert len(set(after["online"]) - set(first["online"])) == 1, (first, after)
        # ... and runs flows: flat parameters through thrifty's client (wrapped into params)
        api = f"http://127.0.0.1:{port}/api"
        done = run_deployment(
            "hibernation-sweep/hibernation-sweep", {"dry_run": True}, api_url=api, timeout_s=400
        )
        assert done.ok, done.state_message

        _run_module("stop", env, port, timeout_s=120)
        assert wait_gone(home, timeout_s=30) == [], "processes left after stop"
    finally:
        _kill(processes_of(home))

"""A deploy-model run killed mid-deploy (SIGKILL), then re-run: it converges.

The run is a real process (``from flows.run import deploy_model`` on a tiny ONNX classifier, ephemeral
Prefect API under a tmp PREFECT_HOME). The test kills its whole process group as soon as the
deployment row appears in the registry — inside the deploy step, while the gateway and the replica
are starting — and runs the same call again. After the re-run there is one deployment, one set of
replicas behind one gateway, the endpoint answers like the original, the benchmarks measured before
the kill were reused, and no process is left over from the killed run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import free_port
from tests.e2e.test_prefect_server import processes_of
from tests.flows.test_deploy_model import IN_FEATURES, TECHNIQUES, build_classifier, infer, original_logits

ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "import sys; from flows.run import deploy_model; "
    "deploy_model(sys.argv[1], name='tiny', p95_ms=1000.0, rps=5.0, bench_runs=5, target='local', "
    f"techniques={TECHNIQUES!r})"
)


@pytest.fixture
def run_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from thrifty import runtime
    from thrifty.serving.daemon import stop_daemon
    from thrifty.settings import get_settings

    home = tmp_path / "thrifty-home"
    env = {
        **os.environ,
        "THRIFTY_HOME": str(home),
        "THRIFTY_GATEWAY_PORT": str(free_port()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    for var in (
        "THRIFTY_DATABASE_URL",
        "THRIFTY_ARTIFACT_STORE_URL",
        "THRIFTY_API_TOKENS",
        "PREFECT_API_URL",
    ):
        env.pop(var, None)
    for var in ("THRIFTY_HOME", "THRIFTY_GATEWAY_PORT"):
        monkeypatch.setenv(var, env[var])
    runtime.reset()
    try:
        yield env
    finally:
        stop_daemon(get_settings())
        for pid in processes_of(home):
            os.kill(pid, signal.SIGKILL)
        runtime.reset()


def start_run(model: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", RUN, str(model)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_when_deploying(run: subprocess.Popen[bytes], log: Path, timeout_s: float = 300) -> None:
    """SIGKILL the run's process group the moment the deploy step has written the deployment row."""
    from thrifty import runtime

    deadline = time.monotonic() + timeout_s
    while runtime.registry().find_deployment("tiny") is None:
        assert run.poll() is None, f"the run ended before deploying:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no deployment row appeared"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)


def orphans(home: Path) -> list[str]:
    """Processes of this THRIFTY_HOME that are not the gateway supervisor, its gateway or its replicas."""
    from thrifty.serving.daemon import daemon_pid
    from thrifty.settings import get_settings

    supervisor = daemon_pid(get_settings())
    parents = {pid: _ppid(pid) for pid in processes_of(home)}
    gateway = {pid for pid, parent in parents.items() if parent == supervisor}
    allowed = {supervisor} | gateway
    return [_cmdline(pid) for pid, parent in parents.items() if pid not in allowed and parent not in gateway]


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid}: ?"


@pytest.mark.slow
def test_killed_run_rerun_converges(run_env: dict[str, str], tmp_path: Path) -> None:
    from thrifty import runtime
    from thrifty.providers.local import LocalProvider

    home = Path(run_env["THRIFTY_HOME"])
    model = build_classifier(tmp_path / "tiny.onnx")
    log = tmp_path / "runs.log"

    kill_when_deploying(start_run(model, run_env, log), log)
    registry = runtime.registry()
    assert "live" not in [e.kind for e in registry.list_events("tiny")], "the kill landed after the deploy"
    variant_ids = [v.id for v in registry.list_variants(registry.get_model_version("tiny").id)]
    bench_rows = len(registry.list_benchmark_results(variant_ids))
    assert bench_rows > 0

    rerun = start_run(model, run_env, log)
    assert rerun.wait(timeout=300) == 0, log.read_text()[-3000:]

    assert [d.name for d in registry.list_deployments()] == ["tiny"]
    row = registry.get_deployment("tiny")
    assert row.state == "running"
    assert "live" in [e.kind for e in registry.list_events("tiny")]
    replicas = [r for r in LocalProvider(start_gateway=False).list_managed() if r.kind == "replica"]
    assert len(replicas) == row.replicas == 1
    x = np.random.default_rng(5).standard_normal((3, IN_FEATURES)).astype(np.float32)
    # the plan may choose the fp16 variant (accepted, as small): fp16 precision, not bit-exactness
    np.testing.assert_allclose(infer(row.endpoint_url, x), original_logits(model, x), rtol=1e-2, atol=1e-2)
    # the measurements made before the kill were reused, not repeated
    assert len(registry.list_benchmark_results(variant_ids)) == bench_rows
    assert wait_gone_except_gateway(home) == []


def wait_gone_except_gateway(home: Path, timeout_s: float = 15.0) -> list[str]:
    """The re-run's process and its ephemeral Prefect API exit; only the gateway tree stays."""
    deadline = time.monotonic() + timeout_s
    while (left := orphans(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left

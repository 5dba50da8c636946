"""`thrifty deploy-local`, `hibernate`, `wake` as a user runs them: real processes, a real gateway.

The commands live in providers/local_commands.py (they drive the local provider); serving's own
commands never import providers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.unit.serving.conftest import mlp_reference

pytestmark = pytest.mark.slow
THRIFTY = Path(sys.executable).parent / "thrifty"


@pytest.fixture
def cli_env(thrifty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from thrifty.serving import daemon
    from thrifty.settings import get_settings

    monkeypatch.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))
    monkeypatch.delenv("THRIFTY_API_TOKENS", raising=False)
    try:
        yield dict(os.environ)
    finally:
        daemon.stop_daemon(get_settings())


def thrifty(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(THRIFTY), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_deploy_local_hibernate_and_wake_from_the_command_line(
    cli_env: dict[str, str], mlp_path: Path
) -> None:
    deployed = thrifty(cli_env, "deploy-local", str(mlp_path), "--name", "mlp", "--json")
    assert deployed.returncode == 0, deployed.stderr
    row = json.loads(deployed.stdout)
    assert (row["name"], row["state"], row["replicas_ready"]) == ("mlp", "running", 1)
    x = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}]}
    answer = httpx.post(f"{row['endpoint_url']}/infer", json=body, timeout=30).json()
    got = np.asarray(answer["outputs"][0]["data"], dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(got, mlp_reference(mlp_path, x), rtol=1e-5)

    hibernated = json.loads(thrifty(cli_env, "hibernate", "mlp", "--json").stdout)
    assert (hibernated["state"], hibernated["replicas_ready"]) == ("hibernated", 0)
    woken = json.loads(thrifty(cli_env, "wake", "mlp", "--json").stdout)
    assert (woken["state"], woken["replicas_ready"]) == ("running", 1)


def test_deploy_local_of_a_missing_file_names_it_and_changes_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    from thrifty import runtime

    done = thrifty(cli_env, "deploy-local", "nope.onnx", cwd=tmp_path)  # with a "/" it reads MODEL/VARIANT
    message = " ".join(done.stderr.split())  # rich wraps long lines
    assert done.returncode == 1
    assert "no file at nope.onnx" in message and "Traceback" not in message
    assert runtime.registry().list_deployments() == []

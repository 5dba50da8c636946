"""Blue-green updates, rollback and delete on local replicas, through the real gateway daemon.

One daemon serves the module; the tests run in file order: deploy r1, update to r2 under load,
a revision that fails verification, rollback to r1, delete.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.unit.serving.conftest import build_mlp, mlp_reference

pytestmark = pytest.mark.slow
NAME = "mlp"


class Env:
    def __init__(self, port: int, v1: Path, v2: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.infer_url = f"{self.url}/v2/models/{NAME}/infer"
        self.v1, self.v2 = v1, v2

    def lifecycle(self, reference: Path | None = None) -> object:
        """The lifecycle on this machine; ``reference`` makes verification compare with that file."""
        from thrifty import runtime
        from thrifty.lifecycle import Lifecycle, smoke_verifier
        from thrifty.providers.local import LocalProvider

        verify = smoke_verifier(ready_deadline_s=10.0)
        if reference is not None:
            verify = _verify_against(reference)
        return Lifecycle(runtime.registry(), lambda _ref: LocalProvider(), verify)

    def spec(self, path: Path) -> object:
        from thrifty import runtime
        from thrifty.providers.local import spec_for_path

        return spec_for_path(path, NAME, runtime.store())


def _verify_against(reference: Path) -> object:
    from thrifty.errors import ServingError
    from thrifty.verify import smoke_test

    def verify(spec: object, status: Any) -> str:
        result = smoke_test(f"{status.endpoint_url}/infer", reference, None, min_cosine=0.999)
        if not result.ok:
            raise ServingError(f"smoke test failed: {result.detail}")
        return result.detail

    return verify


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from thrifty import runtime
    from thrifty.serving import daemon
    from thrifty.settings import get_settings

    home = tmp_path_factory.mktemp("lifecycle-home")
    models = tmp_path_factory.mktemp("models")
    v1, v2 = build_mlp(models / "v1.onnx", seed=0), build_mlp(models / "v2.onnx", seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THRIFTY_HOME", str(home))
        mp.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))
        for var in ("THRIFTY_DATABASE_URL", "THRIFTY_ARTIFACT_STORE_URL", "THRIFTY_API_TOKENS"):
            mp.delenv(var, raising=False)
        runtime.reset()
        try:
            yield Env(get_settings().gateway_port, v1, v2)
        finally:
            daemon.stop_daemon(get_settings())
            runtime.reset()


X = np.random.default_rng(7).standard_normal((1, 4)).astype(np.float32)


def _infer(env: Env) -> np.ndarray:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": X.ravel().tolist()}]}
    response = httpx.post(env.infer_url, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32)


def _under_load(env: Env, action: object) -> tuple[object, list[int]]:
    """Run ``action`` while 8 clients send requests; (its result, every status code seen)."""
    statuses: list[int] = []
    stop = threading.Event()
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": X.ravel().tolist()}]}

    async def load() -> None:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one_client() -> None:
                while not stop.is_set():
                    statuses.append((await client.post(env.infer_url, json=body)).status_code)

            await asyncio.gather(*(one_client() for _ in range(8)))

    runner = threading.Thread(target=lambda: asyncio.run(load()))
    runner.start()
    try:
        result = action()  # type: ignore[operator]
        time.sleep(0.3)
    finally:
        stop.set()
        runner.join(60)
    return result, statuses


def _states() -> list[tuple[int, str]]:
    from thrifty import runtime

    return [(r.number, r.state) for r in runtime.registry().list_revisions(NAME)]


def test_first_deploy_then_update_swaps_without_losing_a_request(env: Env) -> None:
    from thrifty import runtime
    from thrifty.providers.local import LocalProvider

    LocalProvider().deploy(env.spec(env.v1))  # type: ignore[arg-type]
    np.testing.assert_allclose(_infer(env), mlp_reference(env.v1, X)[0], rtol=1e-5)
    lifecycle = env.lifecycle()
    outcome, statuses = _under_load(env, lambda: lifecycle.update(NAME, env.spec(env.v2), "local"))  # type: ignore[attr-defined]
    assert outcome.status == "done" and (outcome.previous, outcome.revision) == (1, 2)  # type: ignore[attr-defined]
    assert len(statuses) > 20 and set(statuses) == {200}
    np.testing.assert_allclose(_infer(env), mlp_reference(env.v2, X)[0], rtol=1e-5)
    assert _states() == [(1, "retired"), (2, "live")]
    names = [d.name for d in runtime.registry().list_deployments("local")]
    assert names == [NAME]  # the staged copy (mlp-r2) is gone


def test_a_revision_that_fails_verification_leaves_the_live_one_serving(env: Env) -> None:
    from thrifty import runtime
    from thrifty.errors import ServingError

    lifecycle = env.lifecycle(reference=env.v2)  # v1 does not answer like v2: verification fails
    with pytest.raises(ServingError, match="smoke test failed"):
        lifecycle.update(NAME, env.spec(env.v1), "local")  # type: ignore[attr-defined]
    np.testing.assert_allclose(_infer(env), mlp_reference(env.v2, X)[0], rtol=1e-5)
    assert _states() == [(1, "retired"), (2, "live"), (3, "failed")]
    assert [d.name for d in runtime.registry().list_deployments("local")] == [NAME]
    assert any(e.kind == "revision_failed" for e in runtime.registry().list_events(NAME))


def test_rollback_returns_to_the_previous_verified_revision(env: Env) -> None:
    lifecycle = env.lifecycle()
    outcome, statuses = _under_load(env, lambda: lifecycle.rollback(NAME))  # type: ignore[attr-defined]
    assert outcome.verb == "rollback" and outcome.revision == 4 and outcome.previous == 2  # type: ignore[attr-defined]
    assert set(statuses) == {200}
    np.testing.assert_allclose(_infer(env), mlp_reference(env.v1, X)[0], rtol=1e-5)
    assert _states() == [(1, "retired"), (2, "retired"), (3, "failed"), (4, "live")]
    with pytest.raises(Exception, match="r3 of 'mlp' is failed"):
        lifecycle.rollback(NAME, to=3)  # type: ignore[attr-defined]


def test_revisions_and_delete_from_the_cli(env: Env) -> None:
    import json

    from typer.testing import CliRunner

    from thrifty import runtime
    from thrifty.cli import app

    listed = CliRunner().invoke(app, ["revisions", NAME, "--json"])
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.output)
    assert [r["state"] for r in shown["revisions"]] == ["retired", "retired", "failed", "live"]
    assert shown["revisions"][3]["reason"] == "rollback to r1"
    assert shown["verbs"] == {"update": None, "rollback": None, "delete": None}
    deleted = CliRunner().invoke(app, ["delete", NAME, "--json"])
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.output)["status"] == "done"
    assert runtime.registry().find_deployment(NAME) is None
    assert httpx.post(env.infer_url, json={"inputs": []}, timeout=10).status_code == 404
    assert [s for _, s in _states()] == ["deleted", "deleted", "failed", "deleted"]
    missing = subprocess.run(
        [sys.executable, "-m", "thrifty", "rollback", "nothing-here"], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no deployment named 'nothing-here'" in missing.stderr
    assert "Traceback" not in missing.stderr and "fix:" in missing.stderr

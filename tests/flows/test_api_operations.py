"""Long operations through the API against the Prefect test harness: a deploy starts a real flow run
(no worker, so it stays scheduled), a second deploy of one name is refused, a flow that is not on
the server is a 501 and leaves nothing behind, and the lock goes once the run ended."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.unit.api.conftest import serving


@pytest.fixture(scope="module")
def deploy_model_applied() -> None:
    from flows.deploy_model import deploy_model

    deploy_model.to_deployment(name="deploy-model", parameters={"params": {"model": "minilm"}}).apply()


@pytest.fixture
def http(
    thrifty_home: Path, deploy_model_applied: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    from prefect.settings import PREFECT_API_URL

    from thrifty import runtime
    from thrifty.api import create_app

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    with (
        serving(create_app(runtime.get_settings())) as url,
        httpx.Client(base_url=f"{url}/api/v1", timeout=60, trust_env=False) as client,
    ):
        yield client


def _register(*names: str) -> None:
    """Models the API may deploy (it deploys registered models only, never a path on the server)."""
    from thrifty import runtime

    registry = runtime.registry()
    for i, name in enumerate(names):
        sha = f"{i + 1:064x}"
        art = registry.upsert_artifact(sha, 10, f"/store/{sha}")
        registry.add_model_version(
            name, sha256=sha, artifact=art, format="onnx", size_bytes=10, source_path="/m"
        )


def _cancel(flow_run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelled(), force=True)


def test_a_deploy_is_an_operation_with_a_flow_run(http: httpx.Client) -> None:
    _register("tiny", "tiny2")
    unknown = http.post("/deployments", json={"model": "/etc/passwd"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "NotFoundError"
    started = http.post("/deployments", json={"model": "tiny", "parameters": {"rps": 5}})
    assert started.status_code == 202, started.text
    op = started.json()
    assert (op["kind"], op["flow"], op["target"], op["done"]) == (
        "deploy",
        "deploy-model/deploy-model",
        "tiny",
        False,
    )
    assert op["flow_run_id"] and op["state"] in ("SCHEDULED", "PENDING")
    polled = http.get(op["poll_url"].removeprefix("/api/v1")).json()
    assert polled["state"] == "SCHEDULED" and polled["flow_run_id"] == op["flow_run_id"]
    assert http.get(f"/operations/{op['id']}/logs").json() == []
    typo = http.post("/deployments", json={"model": "tiny2", "parameters": {"p95": 5}})
    assert typo.status_code == 400 and "p95" in typo.json()["message"]
    assert [o["target"] for o in http.get("/operations").json()["items"]] == ["tiny"]
    _cancel(op["flow_run_id"])


def test_concurrent_deploys_of_one_name_one_wins_one_gets_409(http: httpx.Client) -> None:
    _register("race")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: http.post("/deployments", json={"model": "race"}), range(4)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 409, 409, 409], [a.text for a in answers]
    refusal = next(a for a in answers if a.status_code == 409).json()
    assert refusal["error"] == "ConflictError" and "'race'" in refusal["message"]
    winner = next(a for a in answers if a.status_code == 202).json()
    assert http.get("/operations").json()["total"] == 1  # the losers left no row
    _cancel(winner["flow_run_id"])
    assert http.get(f"/operations/{winner['id']}").json()["done"] is True
    streamed = http.get(f"/operations/{winner['id']}/logs", params={"follow": True})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.rstrip().endswith('data: {"state": "CANCELLED"}')  # the stream ends with the run
    again = http.post("/deployments", json={"model": "race"})  # the lock went with the run
    assert again.status_code == 202
    _cancel(again.json()["flow_run_id"])


def test_a_flow_not_on_the_server_is_501_and_leaves_nothing(http: httpx.Client) -> None:
    from thrifty import runtime

    runtime.registry().upsert_deployment("svc", provider="local", state="running", replicas=1)
    for method, path in (("POST", "/deployments/svc/update"), ("POST", "/deployments/svc/rollback"),
                         ("DELETE", "/deployments/svc")):  # fmt: skip
        answer = http.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 501, answer.text
        assert answer.json()["error"] == "NotAvailableError" and "-deployment" in answer.json()["message"]
    assert http.get("/operations").json()["total"] == 0
    assert http.post("/deployments/svc/update", json={}).status_code == 501  # no lock was left behind

"""thrifty.client.run_deployment against the Prefect API of the test harness, with the real flows' schemas.

Flat parameters ({"model": "minilm"}, the natural guess) used to be accepted and the run crashed
15 s later on the worker ("Process exited with status code: 1"): Prefect merged them next to the
deployment's default ``params``. Now they are wrapped; names the flow does not take are refused
before any run exists.
"""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.client import run_deployment, shape_parameters
from thrifty.errors import ConfigError, ThriftyError


@pytest.fixture(scope="module")
def deployment() -> str:
    """deploy-model applied to the harness the way prefect.yaml applies it (same default params)."""
    from flows.deploy_model import deploy_model

    deploy_model.to_deployment(name="deploy-model", parameters={"params": {"model": "minilm"}}).apply()
    return "deploy-model/deploy-model"


def _api() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def _runs() -> list[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return list(client.read_flow_runs())


@pytest.mark.parametrize(
    "given",
    [{"model": "tiny", "rps": 200.0}, {"params": {"model": "tiny", "rps": 200.0}}],
    ids=["flat", "nested"],
)
def test_both_shapes_reach_the_flow_as_params(deployment: str, given: dict[str, Any]) -> None:
    before = {r.id for r in _runs()}
    # no worker polls the harness: the run stays scheduled, and the wait gives up at once
    with pytest.raises(ThriftyError, match="still SCHEDULED"):
        run_deployment(deployment, given, api_url=_api(), timeout_s=0.0, poll_s=0.01)
    (run,) = [r for r in _runs() if r.id not in before]
    assert run.parameters == {"params": {"model": "tiny", "rps": 200.0}}


@pytest.mark.parametrize(
    ("given", "named"),
    [({"model": "tiny", "p95ms": 50}, "p95ms"), ({"params": {"modle": "tiny"}}, "params.modle")],
    ids=["flat-typo", "nested-typo"],
)
def test_an_unknown_name_is_refused_before_any_run(
    deployment: str, given: dict[str, Any], named: str
) -> None:
    before = len(_runs())
    with pytest.raises(ConfigError, match=f"takes no parameter {named}") as caught:
        run_deployment(deployment, given, api_url=_api())
    assert "p95_ms" in (caught.value.hint or "")  # the fix: the names the form takes
    assert len(_runs()) == before


def test_optional_model_parameter_and_plain_parameters() -> None:
    from prefect import flow
    from prefect.utilities.callables import parameter_schema

    from flows.hibernation_sweep import hibernation_sweep

    # hibernation-sweep takes `params: HibernationSweepParams | None`: flat fields are wrapped too
    schema = parameter_schema(hibernation_sweep.fn).model_dump_for_openapi()
    assert shape_parameters("h/h", schema, {"deployment": "tiny"}) == {"params": {"deployment": "tiny"}}
    with pytest.raises(ConfigError, match="takes no parameter deploymnet"):
        shape_parameters("h/h", schema, {"deploymnet": "tiny"})

    @flow
    def plain(rps: float, name: str = "x") -> None:
        """Several plain parameters: nothing to wrap."""

    schema = parameter_schema(plain.fn).model_dump_for_openapi()
    assert shape_parameters("p/p", schema, {"rps": 2.0}) == {"rps": 2.0}
    with pytest.raises(ConfigError, match="takes no parameter params"):
        shape_parameters("p/p", schema, {"params": {"rps": 2.0}})


def test_a_busy_server_is_retried_and_a_refusal_is_a_thrifty_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Prefect server answers 503 while it starts or its database is busy: retried, never a traceback."""
    import httpx

    from thrifty import client
    from thrifty.errors import ThriftyError

    monkeypatch.setattr(client, "RETRY_DELAYS_S", (0.0, 0.0))
    answers = iter([503, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={"id": "r1"})

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://127.0.0.1:9") as http:
        assert client._send(http, "POST", "/x").status_code == 200
        answers = iter([503, 503, 503])
        refused = client._send(http, "POST", "/x")
        assert refused.status_code == 503
        with pytest.raises(ThriftyError, match="refused to create a run of x: HTTP 503"):
            client._ok(refused, "create a run of x")


def test_the_dashboard_launcher_starts_a_run_and_reads_its_state(deployment: str) -> None:
    """What the dashboard's one-click deploy calls: create the run without waiting, then poll it."""
    from thrifty.errors import NotFoundError
    from thrifty.web.launch import PrefectLauncher

    launcher = PrefectLauncher(api_url=_api(), deployment=deployment)
    before = {r.id for r in _runs()}
    run_id = launcher.start({"model": "tiny", "p95_ms": 80.0})
    (run,) = [r for r in _runs() if r.id not in before]
    assert str(run.id) == run_id and run.parameters == {"params": {"model": "tiny", "p95_ms": 80.0}}
    status = launcher.status(run_id)
    assert (status.name, status.state) == (run.name, "SCHEDULED")  # no worker polls the harness
    with pytest.raises(NotFoundError, match="no flow run"):
        launcher.status("00000000-0000-0000-0000-000000000000")

"""Trigger thrifty's flows on a Prefect server and wait for them — over Prefect's REST API.

    # PREFECT_API_URL=http://127.0.0.1:4200/api (what `make server` prints), or pass api_url=
    from thrifty.client import run_deployment
    run = run_deployment("deploy-model/deploy-model", {"model": "/models/minilm", "rps": 200})

thrifty's flows take one parameter, ``params`` (a pydantic model, so the UI renders one form).
Both shapes are accepted: flat fields (``{"model": ...}``) are wrapped into ``{"params": {...}}``,
and a name the flow does not take is refused before any run is created, with the names it does
take. (Prefect itself accepted the flat shape and the run crashed 15 s later on the worker.)

This module talks HTTP with httpx, so the library keeps its rule of never importing prefect.
To run the flow in this process instead, use ``from flows.run import deploy_model``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

from thrifty.errors import ConfigError, NotFoundError, ThriftyError

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class FlowRunResult:
    flow_run_id: str
    name: str
    state: str
    state_message: str | None

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"


def _api_url(api_url: str | None) -> str:
    url = api_url or os.environ.get("PREFECT_API_URL")
    if not url:
        raise ConfigError(
            "no Prefect server to talk to",
            hint="start one with `make server` and set PREFECT_API_URL=http://127.0.0.1:4200/api",
        )
    return url.rstrip("/")


#: answers a busy or starting server gives; retried with backoff, as Prefect's own client does
RETRY_STATUS = frozenset({429, 502, 503, 504})
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def _send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One API call, retried on a busy server (429/502/503/504) or a dropped connection."""
    for delay_s in (*RETRY_DELAYS_S, None):
        try:
            response = http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            if delay_s is None:
                raise ThriftyError(
                    f"the Prefect API at {http.base_url} did not answer {method} {url}: {exc}",
                    hint="is the server up? `make server` starts one",
                ) from exc
        else:
            if response.status_code not in RETRY_STATUS or delay_s is None:
                return response
        time.sleep(delay_s)
    raise AssertionError("unreachable")  # the loop returns or raises on its last pass


def _ok(response: httpx.Response, what: str) -> httpx.Response:
    if response.is_success:
        return response
    raise ThriftyError(
        f"the Prefect API refused to {what}: HTTP {response.status_code} {response.text[:300]}",
        hint="see the server's log (make server prints where it is)",
    )


def start_deployment(
    name: str, parameters: dict[str, Any] | None = None, *, api_url: str | None = None
) -> FlowRunResult:
    """Create a run of deployment ``FLOW/DEPLOYMENT`` and return at once (its first state)."""
    with httpx.Client(base_url=_api_url(api_url), timeout=30.0) as http:
        return _create_run(http, name, parameters or {})


def _create_run(http: httpx.Client, name: str, parameters: dict[str, Any]) -> FlowRunResult:
    flow_name, _, deployment_name = name.partition("/")
    found = _send(http, "GET", f"/deployments/name/{flow_name}/{deployment_name}")
    if found.status_code == 404:
        raise NotFoundError(f"no Prefect deployment {name!r}", hint="apply them with `make server`")
    deployment = _ok(found, f"read deployment {name}").json()
    shaped = shape_parameters(name, deployment.get("parameter_openapi_schema"), parameters)
    created = _send(
        http, "POST", f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": shaped}
    )
    if created.status_code in (409, 422):  # the server's own parameter validation
        raise ConfigError(
            f"Prefect refused the parameters of {name}: {created.json().get('detail', created.text)}",
            hint=f"pass the fields of the flow's form: {_field_names(deployment)}",
        )
    run = _ok(created, f"create a run of {name}").json()
    state = run.get("state") or {}
    return FlowRunResult(run["id"], run["name"], state.get("type", "SCHEDULED"), state.get("message"))


def flow_run(run_id: str, *, api_url: str | None = None) -> FlowRunResult:
    """Where flow run ``run_id`` stands now."""
    with httpx.Client(base_url=_api_url(api_url), timeout=30.0) as http:
        run = _ok(_send(http, "GET", f"/flow_runs/{run_id}"), f"read flow run {run_id}").json()
    state = run.get("state") or {}
    return FlowRunResult(run_id, run["name"], state.get("type", "PENDING"), state.get("message"))


def flow_run_logs(
    run_id: str, *, api_url: str | None = None, offset: int = 0, limit: int = 200
) -> list[dict[str, Any]]:
    """A flow run's log lines, oldest first: ``{"at", "level", "message"}``."""
    body = {
        "logs": {"flow_run_id": {"any_": [run_id]}},
        "sort": "TIMESTAMP_ASC",
        "offset": offset,
        "limit": limit,
    }
    with httpx.Client(base_url=_api_url(api_url), timeout=30.0) as http:
        rows = _ok(_send(http, "POST", "/logs/filter", json=body), f"read the logs of {run_id}").json()
    return [{"at": r.get("timestamp"), "level": r.get("level"), "message": r.get("message")} for r in rows]


def run_deployment(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    api_url: str | None = None,
    timeout_s: float = 900.0,
    poll_s: float = 1.0,
) -> FlowRunResult:
    """Create a run of deployment ``FLOW/DEPLOYMENT`` and wait until it reaches a final state."""
    with httpx.Client(base_url=_api_url(api_url), timeout=30.0) as http:
        run_id = _create_run(http, name, parameters or {}).flow_run_id
        return _wait(http, run_id, timeout_s, poll_s)


def wait_flow_run(
    run_id: str, *, api_url: str | None = None, timeout_s: float = 900.0, poll_s: float = 1.0
) -> FlowRunResult:
    """Wait until flow run ``run_id`` (started with ``start_deployment``) reaches a final state."""
    with httpx.Client(base_url=_api_url(api_url), timeout=30.0) as http:
        return _wait(http, run_id, timeout_s, poll_s)


def read_flow_run(run_id: str, *, api_url: str | None = None) -> FlowRunResult:
    """A flow run's name and current state (``PENDING``, ``RUNNING``, … or a final one)."""
    with httpx.Client(base_url=_api_url(api_url), timeout=30.0) as http:
        found = _send(http, "GET", f"/flow_runs/{run_id}")
        if found.status_code in (404, 422):
            raise NotFoundError(f"no flow run {run_id!r} on the Prefect server", hint="start a new run")
        run = _ok(found, f"read flow run {run_id}").json()
        state = run.get("state") or {}
        return FlowRunResult(run_id, run["name"], str(state.get("type", "PENDING")), state.get("message"))


def _properties(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The properties of ``node``, following one ``$ref`` (also inside ``X | None``) into definitions."""
    refs = [n for n in node.get("anyOf", []) if isinstance(n, dict) and "$ref" in n]
    ref = str((refs[0] if refs else node).get("$ref", ""))
    if ref.startswith("#/"):
        section, _, key = ref[2:].partition("/")
        node = schema.get(section, {}).get(key, {})
    return dict(node.get("properties") or {})


def _field_names(deployment: dict[str, Any]) -> str:
    schema = deployment.get("parameter_openapi_schema") or {}
    top = _properties(schema, schema)
    if len(top) == 1:
        (only,) = top
        return f"{sorted(_properties(schema, top[only]))} (flat, or inside {{{only!r}: {{...}}}})"
    return str(sorted(top))


def shape_parameters(name: str, schema: dict[str, Any] | None, parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` in the shape the deployment's flow takes, or a ConfigError naming the fix.

    A flow with one model parameter (``params``) gets flat fields wrapped; unknown names are
    refused at the top level and inside that model (pydantic would drop them without a word).
    """
    if not schema or not schema.get("properties"):
        return parameters  # a deployment without a schema: the server decides
    top = _properties(schema, schema)
    wrapped = len(top) == 1 and bool(set(parameters) - set(top))
    shaped = {next(iter(top)): parameters} if wrapped else parameters
    unknown = sorted(set(shaped) - set(top))
    for key, value in shaped.items():
        inner = _properties(schema, top.get(key, {}))
        if inner and isinstance(value, dict):
            prefix = "" if wrapped else f"{key}."
            unknown += [f"{prefix}{k}" for k in sorted(set(value) - set(inner))]
    if unknown:
        raise ConfigError(
            f"deployment {name} takes no parameter {', '.join(unknown)}",
            hint=f"use the fields of its form: {_field_names({'parameter_openapi_schema': schema})}",
        )
    return shaped


def _wait(http: httpx.Client, run_id: str, timeout_s: float, poll_s: float) -> FlowRunResult:
    deadline = time.monotonic() + timeout_s
    while True:
        run = _ok(_send(http, "GET", f"/flow_runs/{run_id}"), f"read flow run {run_id}").json()
        state = run.get("state") or {}
        if state.get("type") in FINAL_STATES:
            return FlowRunResult(run_id, run["name"], state["type"], state.get("message"))
        if time.monotonic() > deadline:
            raise ThriftyError(
                f"flow run {run['name']} is still {state.get('type')} after {timeout_s:.0f} s",
                hint="is a worker polling the work pool? `make server` starts one",
            )
        time.sleep(poll_s)

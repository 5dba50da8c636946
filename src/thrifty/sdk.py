"""``thrifty.Client``: the management API from Python, typed, with retries.

    import thrifty
    api = thrifty.Client("http://127.0.0.1:8080", token="thr_…")
    version = api.upload_model("model.onnx", name="minilm")
    op = api.deploy("minilm", parameters={"p95_ms": 50, "rps": 20})
    api.wait(op.id)

Answers are the read layer's models (the same fields as ``thrifty … --json``). A refusal raises the
ThriftyError subclass the server named (``NotFoundError``, ``AccessError``, ``ConflictError`` …) with
its message and fix; ``status_code`` holds the HTTP status. 429 and 502/503/504 (and a dropped
connection) are retried with backoff; a 500 only for reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from thrifty import errors, read
from thrifty.errors import ThriftyError

M = TypeVar("M", bound=BaseModel)
RETRY_STATUS = frozenset({429, 502, 503, 504})
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


class Operation(BaseModel):
    id: str
    kind: str
    flow: str
    target: str
    state: str
    done: bool
    ok: bool | None
    message: str | None
    flow_run_id: str | None
    created_by: str
    poll_url: str
    logs_url: str


class Applied(BaseModel):
    """An apply or undo: the record, and the flow run's operation when one started."""

    applied: read.AppliedView
    operation: Operation | None


class LocalDeploymentStatus(BaseModel):
    name: str
    state: str
    replicas_desired: int
    replicas_ready: int
    endpoint_url: str | None


class Token(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    token: str | None = None  # only when made


class Uploaded(read.VersionView):
    created: bool
    upload_sha256: str


def _error(response: httpx.Response) -> ThriftyError:
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:300]}
    cls = getattr(errors, str(body.get("error", "")), None)
    cls = cls if isinstance(cls, type) and issubclass(cls, ThriftyError) else ThriftyError
    message = str(body.get("message") or f"HTTP {response.status_code}")
    exc = (
        errors.AccessError(message, hint=body.get("fix"), status=response.status_code)
        if cls is errors.AccessError
        else cls(message, hint=body.get("fix"))
    )
    exc.status_code = response.status_code  # type: ignore[attr-defined]
    return exc


class Client:
    """One thrifty API server; ``token`` is a bearer token (none: loopback only)."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout_s: float = 60.0, retries: int = 4
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout_s, trust_env=False
        )
        self._delays = RETRY_DELAYS_S[:retries]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        retry = RETRY_STATUS | ({500} if method == "GET" else set())
        for delay_s in (*self._delays, None):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if delay_s is None:
                    raise ThriftyError(f"the thrifty API at {self._http.base_url} did not answer: {exc}",
                                       hint="is `thrifty api` running there?") from exc  # fmt: skip
            else:
                if response.is_success:
                    return response.json()
                if response.status_code not in retry or delay_s is None:
                    raise _error(response)
            time.sleep(delay_s or 0.0)
        raise AssertionError("unreachable")  # the loop returns or raises on its last pass

    def _pages(self, path: str, model: type[M], params: dict[str, Any] | None = None) -> Iterator[M]:
        offset: int | None = 0
        while offset is not None:
            page = self._request("GET", path, params={**(params or {}), "offset": offset, "limit": 500})
            yield from (model.model_validate(item) for item in page["items"])
            offset = page["next_offset"]

    def _op(self, method: str, path: str, **kwargs: Any) -> Operation:
        return Operation.model_validate(self._request(method, path, **kwargs))

    # -- models and variants ---------------------------------------------------------------------
    def models(self) -> list[read.ModelSummary]:
        return list(self._pages("/models", read.ModelSummary))

    def model(self, name: str) -> read.ModelView:
        return read.ModelView.model_validate(self._request("GET", f"/models/{name}"))

    def upload_model(self, path: str | Path, name: str | None = None) -> Uploaded:
        """Upload one model file (streamed from disk), validated and registered by the server."""
        path = Path(path)
        with path.open("rb") as fh:
            data = {"name": name} if name else {}
            return Uploaded.model_validate(
                self._request("POST", "/models", files={"file": (path.name, fh)}, data=data)
            )

    def variants(self, name: str, version: int | None = None) -> list[read.VariantView]:
        return list(
            self._pages(
                f"/models/{name}/variants", read.VariantView, {"version": version} if version else None
            )
        )

    def optimize(self, name: str, parameters: dict[str, Any] | None = None) -> Operation:
        return self._op("POST", f"/models/{name}/optimize", json={"parameters": parameters or {}})

    # -- prices, plans, reports ------------------------------------------------------------------
    def prices(self, **filters: Any) -> read.PriceTable:
        return read.PriceTable.model_validate(self._request("GET", "/prices", params=filters))

    def refresh_prices(self, parameters: dict[str, Any] | None = None) -> Operation:
        return self._op("POST", "/prices/refresh", json={"parameters": parameters or {}})

    def make_plan(self, model: str, p95_ms: float, rps: float, **choices: Any) -> dict[str, Any]:
        body = {"model": model, "p95_ms": p95_ms, "rps": rps, **choices}
        made: dict[str, Any] = self._request("POST", "/plans", json=body)
        return made

    def plans(self) -> list[read.PlanSummary]:
        return list(self._pages("/plans", read.PlanSummary))

    def plan(self, plan_id: int, candidates: int = 50) -> dict[str, Any]:
        """The stored decision: ``explanation`` (text), ``record``, ``candidates_total``."""
        found: dict[str, Any] = self._request("GET", f"/plans/{plan_id}", params={"candidates": candidates})
        return found

    def report(self, ref: str) -> dict[str, Any]:
        found: dict[str, Any] = self._request("GET", f"/reports/{ref}")
        return found

    # -- deployments -----------------------------------------------------------------------------
    def deployments(self, provider: str | None = None) -> list[read.DeploymentView]:
        return list(
            self._pages("/deployments", read.DeploymentView, {"provider": provider} if provider else None)
        )

    def deployment(self, name: str) -> read.DeploymentView:
        return read.DeploymentView.model_validate(self._request("GET", f"/deployments/{name}"))

    def events(self, name: str) -> list[read.EventView]:
        return list(self._pages(f"/deployments/{name}/events", read.EventView))

    def status(self) -> read.LocalStatus:
        return read.LocalStatus.model_validate(self._request("GET", "/status"))

    def deploy(
        self, model: str, name: str | None = None, parameters: dict[str, Any] | None = None
    ) -> Operation:
        return self._op(
            "POST", "/deployments", json={"model": model, "name": name, "parameters": parameters or {}}
        )

    def update(self, name: str, parameters: dict[str, Any] | None = None) -> Operation:
        return self._op("POST", f"/deployments/{name}/update", json={"parameters": parameters or {}})

    def rollback(self, name: str, parameters: dict[str, Any] | None = None) -> Operation:
        return self._op("POST", f"/deployments/{name}/rollback", json={"parameters": parameters or {}})

    def delete(self, name: str) -> Operation:
        return self._op("DELETE", f"/deployments/{name}")

    def deploy_local(self, ref: str, name: str | None = None, replicas: int = 1) -> LocalDeploymentStatus:
        body = {"ref": ref, "name": name, "replicas": replicas}
        return LocalDeploymentStatus.model_validate(self._request("POST", "/deployments/local", json=body))

    def hibernate(self, name: str) -> LocalDeploymentStatus:
        return LocalDeploymentStatus.model_validate(self._request("POST", f"/deployments/{name}/hibernate"))

    def wake(self, name: str) -> LocalDeploymentStatus:
        return LocalDeploymentStatus.model_validate(self._request("POST", f"/deployments/{name}/wake"))

    def scale(self, name: str, replicas: int) -> LocalDeploymentStatus:
        body = {"replicas": replicas}
        return LocalDeploymentStatus.model_validate(
            self._request("POST", f"/deployments/{name}/scale", json=body)
        )

    # -- fleet -----------------------------------------------------------------------------------
    def costs(self, name: str | None = None) -> read.CostsView:
        """Month to date, forecast, $/1M requests (both bases), plan and naive baseline per deployment."""
        params = {"name": name} if name else None
        return read.CostsView.model_validate(self._request("GET", "/costs", params=params))

    def alerts(self, name: str | None = None, limit: int = 50) -> list[read.AlertView]:
        params: dict[str, Any] = {"limit": limit} | ({"name": name} if name else {})
        found = self._request("GET", "/alerts", params=params)
        return [read.AlertView.model_validate(a) for a in found]

    def recommendations(self, name: str | None = None, days: float = 7.0) -> read.RecommendationsView:
        params: dict[str, Any] = {"days": days} | ({"name": name} if name else {})
        return read.RecommendationsView.model_validate(
            self._request("GET", "/recommendations", params=params)
        )

    def apply_recommendation(self, name: str, kind: str, days: float = 7.0) -> Applied:
        """Apply ``name``'s recommendation of ``kind``: a redeploy's flow run starts (``operation``),
        a hibernation policy is stored at once; ``applied`` is the record undo returns to."""
        found = self._request("POST", f"/recommendations/{name}/{kind}/apply", params={"days": days})
        return Applied.model_validate(found)

    def undo_recommendation(self, name: str, applied_id: int | None = None) -> Applied:
        """Undo ``name``'s latest applied recommendation (a rollback run, or the previous policy)."""
        params = {"applied_id": applied_id} if applied_id is not None else None
        return Applied.model_validate(self._request("POST", f"/recommendations/{name}/undo", params=params))

    def applied_recommendations(self, name: str) -> list[read.AppliedView]:
        found = self._request("GET", f"/recommendations/{name}/applied")
        return [read.AppliedView.model_validate(a) for a in found]

    def simulate(self, deployments: list[str], days: float = 7.0, **options: Any) -> dict[str, Any]:
        found: dict[str, Any] = self._request(
            "POST", "/simulate", json={"deployments": deployments, "days": days, **options}
        )
        return found

    def policies(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", "/policies")
        return found

    def targets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", "/targets")
        return found

    def storage_plan(self, **rules: Any) -> dict[str, Any]:
        found: dict[str, Any] = self._request("POST", "/storage/plan", json=rules)
        return found

    def storage_apply(self, **rules: Any) -> Operation:
        return self._op("POST", "/storage/apply", json=rules)

    # -- operations ------------------------------------------------------------------------------
    def operation(self, op_id: str) -> Operation:
        return self._op("GET", f"/operations/{op_id}")

    def operations(self) -> list[Operation]:
        return list(self._pages("/operations", Operation))

    def operation_logs(self, op_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", f"/operations/{op_id}/logs")
        return found

    def wait(self, op_id: str, timeout_s: float = 900.0, poll_s: float = 2.0) -> Operation:
        """Poll an operation until it ends (or ThriftyError after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while not (op := self.operation(op_id)).done:
            if time.monotonic() > deadline:
                raise ThriftyError(f"operation {op_id} is still {op.state} after {timeout_s:.0f} s",
                                   hint="is a Prefect worker running? `make server` starts one")  # fmt: skip
            time.sleep(poll_s)
        return op

    # -- tokens, audit, webhooks -----------------------------------------------------------------
    def create_token(self, name: str, role: str) -> Token:
        return Token.model_validate(self._request("POST", "/tokens", json={"name": name, "role": role}))

    def tokens(self) -> list[Token]:
        return [Token.model_validate(t) for t in self._request("GET", "/tokens")]

    def revoke_token(self, token_id: int) -> Token:
        return Token.model_validate(self._request("DELETE", f"/tokens/{token_id}"))

    def audit(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", "/audit", params={"limit": 500})["items"]
        return found

    def create_webhook(self, url: str, event_types: list[str], secret: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = self._request(
            "POST", "/webhooks", json={"url": url, "event_types": event_types, "secret": secret}
        )
        return found

    def webhooks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", "/webhooks")
        return found

    def delete_webhook(self, subscription_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self._request("DELETE", f"/webhooks/{subscription_id}")
        return found

    def webhook_deliveries(self, subscription_id: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", f"/webhooks/{subscription_id}/deliveries")
        return found

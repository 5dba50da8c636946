"""Long work through the API: a Prefect flow run started over HTTP, tracked as an operation.

``start`` takes the target's lock (``api_operations.active_target`` is unique), then asks Prefect for
a run; if Prefect refuses, the row goes again — nothing half-written. ``refresh`` reads the run's
state (and frees the lock once it ended); ``logs`` reads its log lines.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from thrifty import client
from thrifty.errors import ConfigError, ConflictError, NotAvailableError, NotFoundError, ThriftyError
from thrifty.registry import Registry
from thrifty.registry.access import ApiOperation

#: operation kind → the Prefect deployment it runs (FLOW/DEPLOYMENT, as in prefect.yaml)
FLOWS = {
    "deploy": "deploy-model/deploy-model",
    "optimize": "optimize-model/optimize-model",
    "update": "update-deployment/update-deployment",
    "rollback": "rollback-deployment/rollback-deployment",
    "delete": "delete-deployment/delete-deployment",
    "refresh-prices": "price-monitor/price-monitor",
    "storage-apply": "storage-tiering/storage-tiering",
    "recommendation": "deploy-model/deploy-model",  # the recommendation names its flow (``flow=``)
}


class OperationView(BaseModel):
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
    created_at: datetime
    updated_at: datetime
    poll_url: str
    logs_url: str


def view(row: ApiOperation) -> OperationView:
    done = row.state in client.FINAL_STATES
    return OperationView(
        id=row.id, kind=row.kind, flow=row.flow, target=row.target, state=row.state, done=done,
        ok=(row.state == "COMPLETED") if done else None, message=row.message, flow_run_id=row.flow_run_id,
        created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at,
        poll_url=f"/api/v1/operations/{row.id}", logs_url=f"/api/v1/operations/{row.id}/logs",
    )  # fmt: skip


def start(
    registry: Registry, kind: str, target: str, parameters: dict[str, Any], who: str, flow: str | None = None
) -> ApiOperation:
    """Lock ``target``, start the flow run (``flow``, default the kind's); ConflictError when an
    operation on it still runs."""
    _release_if_done(registry, target)
    row = ApiOperation(
        id=uuid.uuid4().hex, kind=kind, flow=flow or FLOWS[kind], target=target, active_target=target,
        parameters=parameters, created_by=who,
    )  # fmt: skip
    try:
        with registry.session() as s:
            s.add(row)
    except IntegrityError as exc:
        raise _busy(registry, target) from exc
    try:
        run = client.start_deployment(row.flow, parameters)
    except ThriftyError as exc:
        _forget(registry, row.id)
        raise _unavailable(row.flow, exc) from exc
    return _update(registry, row.id, flow_run_id=run.flow_run_id, state=run.state, message=run.state_message)


def _busy(registry: Registry, target: str) -> ConflictError:
    with registry.session() as s:
        other = s.scalar(select(ApiOperation).where(ApiOperation.active_target == target))
    which = f"operation {other.id} ({other.kind}, {other.state})" if other else "another operation"
    return ConflictError(
        f"{which} is still running on {target!r}",
        hint=f"wait for it (GET /api/v1/operations/{other.id if other else '…'}) and try again",
    )


def _unavailable(flow: str, exc: ThriftyError) -> ThriftyError:
    """Prefect's refusal as the API says it: a missing flow or no server are 501, not the caller's fault."""
    if isinstance(exc, NotFoundError):
        return NotAvailableError(
            f"the Prefect deployment {flow} is not on the server yet, so this operation cannot run",
            hint="update thrifty and re-apply the deployments with `make server` (prefect.yaml names them)",
        )
    if isinstance(exc, ConfigError) and exc.message.startswith("no Prefect server"):
        return NotAvailableError(f"long operations need a Prefect server: {exc.message}", hint=exc.hint)
    return exc


def _forget(registry: Registry, op_id: str) -> None:
    with registry.session() as s:
        found = s.get(ApiOperation, op_id)
        if found is not None:
            s.delete(found)


def _update(registry: Registry, op_id: str, **fields: Any) -> ApiOperation:
    with registry.session() as s:
        row = s.get(ApiOperation, op_id)
        if row is None:
            raise NotFoundError(f"no operation {op_id!r}", hint="see GET /api/v1/operations")
        for key, value in fields.items():
            setattr(row, key, value)
        if row.state in client.FINAL_STATES:
            row.active_target = None
        return row


def get(registry: Registry, op_id: str) -> ApiOperation:
    with registry.session() as s:
        row = s.get(ApiOperation, op_id)
    if row is None:
        raise NotFoundError(f"no operation {op_id!r}", hint="see GET /api/v1/operations for their ids")
    return row


def refresh(registry: Registry, op_id: str) -> ApiOperation:
    """The operation with its flow run's state read now (the lock freed once it ended)."""
    row = get(registry, op_id)
    if row.state in client.FINAL_STATES or row.flow_run_id is None:
        return row
    run = client.flow_run(row.flow_run_id)
    return _update(registry, op_id, state=run.state, message=run.state_message)


def _release_if_done(registry: Registry, target: str) -> None:
    with registry.session() as s:
        other = s.scalar(select(ApiOperation).where(ApiOperation.active_target == target))
    if other is not None and other.flow_run_id is not None:
        try:
            refresh(registry, other.id)
        except ThriftyError:
            return  # Prefect unreachable: the lock stays (a deploy may still run)


def listing(registry: Registry, offset: int, limit: int) -> tuple[list[ApiOperation], int]:
    from sqlalchemy import func

    with registry.session() as s:
        total = int(s.scalar(select(func.count()).select_from(ApiOperation)) or 0)
        query = select(ApiOperation).order_by(ApiOperation.created_at.desc()).offset(offset).limit(limit)
        return list(s.scalars(query)), total


def logs(registry: Registry, op_id: str, offset: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    row = get(registry, op_id)
    if row.flow_run_id is None:
        return []
    return client.flow_run_logs(row.flow_run_id, offset=offset, limit=limit)

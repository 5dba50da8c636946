"""Models and variants: list, show, upload (``thrifty ingest``), variants, optimize."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from thrifty import read
from thrifty.api import ops, upload
from thrifty.api.deps import Conf, Deployer, Limit, Offset, Page, Reg, Viewer, audit, page
from thrifty.api.ops import OperationView

router = APIRouter(tags=["models"])


def cli(*commands: str) -> dict[str, Any]:
    """The CLI command(s) an operation stands for; the parity test reads this from the OpenAPI doc."""
    return {"x-thrifty-cli": list(commands)}


@router.get("/models", openapi_extra=cli("models list"))
def list_models(_: Viewer, registry: Reg, offset: Offset = 0, limit: Limit = 50) -> Page[read.ModelSummary]:
    """Every registered model with its newest version."""
    return page(read.models(registry), offset, limit)


@router.get("/models/{name}", openapi_extra=cli("models show"))
def show_model(name: str, _: Viewer, registry: Reg) -> read.ModelView:
    """Every version of a model with its signature."""
    return read.model(registry, name)


class Uploaded(read.VersionView):
    created: bool
    upload_sha256: str


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "The model file."},
                    "name": {"type": "string", "description": "Registry name (default: from the file)."},
                },
            }
        }
    },
}


@router.post("/models", status_code=201, openapi_extra=cli("ingest") | {"requestBody": UPLOAD_BODY})
async def upload_model(request: Request, who: Deployer, registry: Reg, settings: Conf) -> Uploaded:
    """Upload a model file (multipart field ``file``; optional field ``name``), streamed with a size
    limit and hashed, then validated and registered as ``thrifty ingest`` does."""
    result, staged = await upload.upload_model(
        request.headers, request.stream(), registry=registry, settings=settings
    )
    row = read.version_view(result.version)
    audit(registry, who, "models.upload", row.model, None, row)
    return Uploaded(**row.model_dump(), created=result.created, upload_sha256=staged.sha256)


@router.get("/models/{name}/variants", openapi_extra=cli("variants"))
def list_variants(
    name: str, _: Viewer, registry: Reg, version: int | None = None, offset: Offset = 0, limit: Limit = 50
) -> Page[read.VariantView]:
    """A model version's variants: size, latency, fidelity, verdict."""
    return page(read.variants(registry, name, version), offset, limit)


class OptimizeRequest(BaseModel):
    """The optimize-model flow's form; fields it does not take are refused with the ones it does."""

    parameters: dict[str, Any] = Field(default_factory=dict, description="Fields of OptimizeParams.")


@router.post("/models/{name}/optimize", status_code=202, openapi_extra=cli("optimize"))
def optimize(name: str, body: OptimizeRequest, who: Deployer, registry: Reg) -> OperationView:
    """Start the optimize-model flow for a registered model; poll the operation it returns."""
    read.model(registry, name)  # 404 before anything starts
    params = {"model": name, **body.parameters}
    row = ops.start(registry, "optimize", f"model:{name}", params, who.name)
    audit(registry, who, "models.optimize", name, None, {"operation": row.id, "parameters": params})
    return ops.view(row)

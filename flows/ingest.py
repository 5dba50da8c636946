"""Flow ``ingest-model``: register a model file or folder (the first step of deploy-model)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.events import emit_event
from pydantic import BaseModel, Field

from tasks.ingest import ingest_model


class IngestParams(BaseModel):
    path: str = Field(..., description="Model file or folder: ONNX, PyTorch or a Hugging Face folder.")
    name: str | None = Field(None, description="Registry name; default: derived from the path.")


@flow(name="ingest-model", log_prints=True)
def ingest(params: IngestParams) -> dict[str, Any]:
    """Validate, store and register one model; returns the registered version."""
    version = ingest_model(params.path, params.name)
    state = "new version" if version["created"] else "unchanged (same bytes)"
    print(f"{version['model']} v{version['version']}: {version['format']}, {state}")
    if version["created"]:  # the deploy-model deployment's trigger (prefect.yaml) listens for this
        emit_event(
            event="thrifty.model.registered",
            resource={
                "prefect.resource.id": f"thrifty.model.{version['model']}",
                "thrifty.model.name": version["model"],
                "thrifty.model.version": str(version["version"]),
            },
            payload={"sha256": version["sha256"], "format": version["format"], "path": params.path},
        )
    return version

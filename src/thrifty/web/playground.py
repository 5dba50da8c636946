"""The playground: one real inference, sent by the server to a deployment's endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from thrifty import read
from thrifty.errors import InvalidRequestError, ServingError
from thrifty.registry import Registry
from thrifty.report import example_inputs
from thrifty.settings import Settings

TIMEOUT_S = 30.0


def example_body(registry: Registry, view: read.DeploymentView) -> str:
    """A request the deployment accepts: a sentence for text models, zeros shaped like the inputs else."""
    text = {
        "inputs": [
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["thrifty keeps models cheap"]}
        ]
    }
    if view.variant_id is None:
        return json.dumps(text, indent=1)
    variant = registry.get_variant(view.variant_id)
    version = registry.get_model_version_by_id(variant.model_version_id)
    if version.format == "huggingface":
        return json.dumps(text, indent=1)
    return json.dumps({"inputs": example_inputs(version.signature)}, indent=1)


def _headers(settings: Settings) -> dict[str, str]:
    """The gateway's bearer token when one is configured in clear (a ``sha256:`` digest cannot be sent)."""
    for token in settings.api_tokens:
        value = token.get_secret_value()
        if not value.startswith("sha256:"):
            return {"authorization": f"Bearer {value}"}
    return {}


def send(view: read.DeploymentView, body_text: str, settings: Settings) -> tuple[int, Any, float]:
    """POST ``body_text`` to the deployment's ``/infer``: (HTTP status, JSON answer, latency ms)."""
    if not view.endpoint_url:
        raise ServingError(f"deployment {view.name!r} has no endpoint yet", hint="deploy it, then try again")
    try:
        body = json.loads(body_text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the request body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint='send an Open Inference Protocol body, e.g. {"inputs": [...]} as prefilled',
        ) from exc
    started = time.perf_counter()
    try:
        response = httpx.post(
            f"{view.endpoint_url.rstrip('/')}/infer", json=body, headers=_headers(settings), timeout=TIMEOUT_S
        )
    except httpx.HTTPError as exc:
        raise ServingError(
            f"{view.endpoint_url} did not answer: {exc}",
            hint=f"is the deployment up? `thrifty status` shows it; state is {view.state}",
        ) from exc
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:2000]
    return response.status_code, answer, latency_ms

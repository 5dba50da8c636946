"""A smoke test: one real inference through the gateway, compared with an expected output."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np

from thrifty.errors import ServingError
from thrifty.serving import daemon
from thrifty.settings import Settings, get_settings


def smoke_test(
    name: str,
    inputs: list[dict[str, Any]],
    expected: dict[str, Any],
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    base_url: str | None = None,
    settings: Settings | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """POST ``inputs`` (OIP JSON tensors) to deployment ``name``; every output in ``expected`` must
    match within ``rtol``/``atol``. Returns latency and the largest error; ServingError otherwise."""
    settings = settings or get_settings()
    url = f"{base_url or daemon.gateway_url(settings)}/v2/models/{name}/infer"
    started = time.perf_counter()
    try:
        response = httpx.post(
            url, json={"inputs": inputs}, headers=daemon.auth_headers(settings), timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        raise ServingError(
            f"smoke test of {name!r}: no answer from {url}: {exc}", hint="is the gateway up? `thrifty up`"
        ) from exc
    latency_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise ServingError(f"smoke test of {name!r}: HTTP {response.status_code}: {response.text[:300]}")
    outputs = {o["name"]: np.asarray(o["data"], dtype=np.float64) for o in response.json()["outputs"]}
    errors = {
        key: _max_error(name, key, outputs, np.asarray(want, dtype=np.float64), rtol, atol)
        for key, want in expected.items()
    }
    return {
        "name": name,
        "latency_ms": latency_ms,
        "max_abs_error": max(errors.values(), default=0.0),
        "outputs_checked": sorted(errors),
    }


def _max_error(
    name: str, key: str, outputs: dict[str, np.ndarray], want: np.ndarray, rtol: float, atol: float
) -> float:
    if key not in outputs:
        raise ServingError(f"smoke test of {name!r}: no output {key!r}; got {sorted(outputs)}")
    got = outputs[key].reshape(-1)
    want = want.reshape(-1)
    if got.shape != want.shape:
        raise ServingError(
            f"smoke test of {name!r}: output {key!r} has {got.size} values, expected {want.size}"
        )
    error = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        raise ServingError(
            f"smoke test of {name!r}: output {key!r} differs from the expected values (max abs error {error:.3g})",
            hint=f"tolerance rtol={rtol}, atol={atol}; check the variant's fidelity",
        )
    return error

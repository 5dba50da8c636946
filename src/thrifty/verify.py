"""The smoke test that gates a deployment: one real inference through the gateway, compared with
what the original model answers for the same input.

"The original" is the fp32 ONNX export of the ingested model (the ``onnx-fp32`` variant, itself
checked against the source model when it was made), run here in-process by the same serving code
(tokenizer and all), so the only difference left is the deployed variant and the path through the
gateway.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.errors import ServingError

if TYPE_CHECKING:
    import httpx

SMOKE_TEXTS = ("thrifty keeps models cheap", "a cat sits on the mat", "spot prices changed overnight")


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    metric: str
    value: float
    threshold: float
    latency_ms: float
    output_name: str
    output_preview: list[float]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_outputs(model_path: Path, tokenizer_path: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(feeds as sent over the wire, outputs of the reference model) for the smoke input."""
    import numpy as np

    from thrifty.serving.runner import TEXT_INPUT, ModelRunner

    runner = ModelRunner("reference", model_path, tokenizer_path=tokenizer_path)
    try:
        if runner.tokenizer is not None:
            feeds = {TEXT_INPUT: np.array([t.encode() for t in SMOKE_TEXTS], dtype=object)}
        else:
            feeds = runner.example_feeds()

        async def once() -> dict[str, Any]:
            return await runner.submit(feeds)

        return feeds, asyncio.run(once())
    finally:
        runner.close()


def oip_request(feeds: dict[str, Any]) -> dict[str, Any]:
    """The Open Inference Protocol request body (JSON) of ``feeds``."""
    return _request_body(feeds)


def _request_body(feeds: dict[str, Any]) -> dict[str, Any]:
    from thrifty.serving.oip import oip_datatype

    inputs = []
    for name, array in feeds.items():
        data = [v.decode() for v in array.ravel()] if array.dtype == object else array.ravel().tolist()
        inputs.append(
            {"name": name, "shape": list(array.shape), "datatype": oip_datatype(array), "data": data}
        )
    return {"inputs": inputs}


def infer_over_http(
    url: str, feeds: dict[str, Any], token: str | None, timeout_s: float, client: httpx.Client | None = None
) -> tuple[dict[str, Any], float]:
    """POST an OIP v2 JSON request; returns (outputs by name as numpy arrays, latency in ms).

    ``client`` (``thrifty.reach.endpoint_client``) pins the deployment's certificate."""
    import httpx
    import numpy as np

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    post = client.post if client is not None else httpx.post
    started = time.perf_counter()
    try:
        response = post(url, json=_request_body(feeds), headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServingError(f"smoke test: {url} did not answer ({exc})", hint="see `thrifty status`") from exc
    latency_ms = (time.perf_counter() - started) * 1000
    if response.status_code in (401, 403):
        raise _refused_token(url, response.status_code, token)
    if response.status_code != 200:
        raise ServingError(
            f"smoke test: {url} answered {response.status_code}: {response.text[:300]}",
            hint="see the gateway log under THRIFTY_HOME/logs",
        )
    outputs = {
        o["name"]: np.asarray(o["data"], dtype=np.float64).reshape(o["shape"])
        for o in response.json()["outputs"]
    }
    return outputs, latency_ms


def compare(reference: Any, served: Any, min_cosine: float) -> tuple[str, float, float]:
    """(metric, value, threshold): the lowest row-wise cosine between served and original outputs."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    got = np.asarray(served, dtype=np.float64).reshape(len(served), -1)
    if ref.shape != got.shape:
        raise ServingError(
            f"smoke test: served output shape {got.shape} differs from the original's {ref.shape}"
        )
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cosine = float(np.min(np.sum(ref * got, axis=1) / np.maximum(norms, 1e-12)))
    return "cosine_min", cosine, min_cosine


def model_url(endpoint_url: str, name: str) -> str:
    """The OIP model URL of a deployment: its endpoint as providers report it, or the server root."""
    endpoint = endpoint_url.rstrip("/")
    return endpoint if "/v2/models/" in endpoint else f"{endpoint}/v2/models/{name}"


def wait_ready(
    url: str, token: str | None, deadline_s: float, poll_s: float = 1.0, client: httpx.Client | None = None
) -> float:
    """Poll ``url``/ready (OIP model readiness) until 200; seconds waited, or ServingError at the deadline."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    get = client.get if client is not None else httpx.get
    started = time.perf_counter()
    last = "no answer yet"
    while True:
        try:
            response = get(f"{url}/ready", headers=headers, timeout=min(10.0, max(poll_s, 1.0)))
            if response.status_code == 200:
                return time.perf_counter() - started
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code in (401, 403):
                raise _refused_token(url, response.status_code, token)  # waiting does not make it better
        except httpx.HTTPError as exc:
            last = str(exc) or type(exc).__name__
        if time.perf_counter() - started + poll_s > deadline_s:
            break
        time.sleep(poll_s)
    raise ServingError(
        f"smoke test: {url} was not ready within {deadline_s:.0f} s ({last})",
        hint="the replicas never became ready: look at the deployment's boot log; it is rolled back",
    )


def _refused_token(url: str, status: int, token: str | None) -> ServingError:
    """The replica answers but refuses the deployment's token: no wait fixes that."""
    which = "no token was sent" if not token else "the token sent is not the one the replica knows"
    return ServingError(
        f"smoke test: {url} refused the request with HTTP {status}: {which}",
        hint="the replica checks the sha256 of the deployment's token (THRIFTY_API_TOKEN_SHA256): "
        "deploy again so a new token is made and delivered, or verify with the token from that deploy; "
        "the failed revision is rolled back",
    )


def smoke_test(
    infer_url: str,
    reference_model: Path,
    tokenizer_path: Path | None,
    *,
    min_cosine: float = 0.99,
    token: str | None = None,
    timeout_s: float = 60.0,
    ready_deadline_s: float = 0.0,
    client: httpx.Client | None = None,
) -> SmokeResult:
    """Infer through ``infer_url`` (``…/v2/models/NAME/infer``) and compare with the reference model.

    With ``ready_deadline_s``, first wait for the model's readiness (``…/ready``) up to that long:
    a cloud replica answers only after its VM booted and its container fetched the variant.
    ``client`` reaches a cloud deployment over HTTPS, trusting only its pinned certificate.
    """
    feeds, expected = reference_outputs(reference_model, tokenizer_path)
    if ready_deadline_s > 0:
        wait_ready(infer_url.removesuffix("/infer"), token, ready_deadline_s, client=client)
    served, latency_ms = infer_over_http(infer_url, feeds, token, timeout_s, client)
    name = next(iter(expected))
    if name not in served:
        raise ServingError(f"smoke test: the served model has no output {name!r} (got {sorted(served)})")
    metric, value, threshold = compare(expected[name], served[name], min_cosine)
    ok = value >= threshold
    detail = f"{metric} {value:.4f} {'≥' if ok else '<'} {threshold} over {len(expected[name])} input(s)"
    preview = [round(float(v), 4) for v in served[name].ravel()[:6]]
    return SmokeResult(ok, metric, value, threshold, latency_ms, name, preview, detail)

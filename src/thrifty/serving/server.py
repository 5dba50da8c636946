"""The inference server: Open Inference Protocol v2 REST over ``thrifty.serving.http``.

Routes: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}]``,
``.../ready``, ``POST .../infer`` and ``GET /metrics`` (Prometheus). Errors use the protocol's
``{"error": message}`` body: 400 for a request that does not fit the signature, 404 for an unknown
model, 401/403 for auth, 413 for an oversize body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thrifty.errors import InvalidRequestError, ServingError
from thrifty.serving import auth
from thrifty.serving.http import Request, Response, error_response, json_response
from thrifty.serving.metrics import Metrics
from thrifty.serving.oip import decode_request, encode_response
from thrifty.serving.runner import ModelRunner, RunnerConfig

SERVER_NAME = "thrifty"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    api_tokens: tuple[str, ...] = ()
    runner: RunnerConfig = field(default_factory=RunnerConfig)


@dataclass(frozen=True)
class ModelRoute:
    """A parsed ``/v2/models/...`` path: model name, optional version, action ('' = metadata)."""

    name: str
    version: str | None
    action: str


def parse_model_path(path: str) -> ModelRoute | None:
    parts = path.split("/")
    if len(parts) < 4 or parts[1] != "v2" or parts[2] != "models" or not parts[3]:
        return None
    rest = parts[4:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if len(rest) > 1 or (rest and rest[0] not in ("ready", "infer")):
        return None
    return ModelRoute(parts[3], version, rest[0] if rest else "")


class InferenceServer:
    """Routes requests to the models it serves; ``handle`` is the ``thrifty.serving.http`` handler."""

    def __init__(self, config: ServerConfig | None = None, metrics: Metrics | None = None) -> None:
        self.config = config or ServerConfig()
        self.metrics = metrics or Metrics()
        self.models: dict[str, ModelRunner] = {}
        self._tokens = tuple(t.encode() for t in self.config.api_tokens)

    def load(
        self, name: str, model_path: Path, *, tokenizer_path: Path | None = None, version: str = "1"
    ) -> ModelRunner:
        batch_hist = self.metrics.batch_size.labels(name)
        queue_hist = self.metrics.queue_time.labels(name)

        def on_batch(size: int, queued_s: float) -> None:
            batch_hist.observe(size)
            queue_hist.observe(queued_s)

        runner = ModelRunner(
            name,
            model_path,
            version=version,
            tokenizer_path=tokenizer_path,
            config=self.config.runner,
            on_batch=on_batch,
        )
        self.models[name] = runner
        self.metrics.cold_starts.labels(name).inc()
        return runner

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        path = request.path
        if path.startswith("/v2/health/"):
            return self._health(path)
        denied = auth.check(request, self._tokens)
        if denied is not None:
            return denied
        if path == "/metrics":
            return Response(200, self.metrics.render(), "text/plain; version=0.0.4")
        if path in ("/v2", "/v2/"):
            return json_response({"name": SERVER_NAME, "version": "1", "extensions": ["binary_tensor_data"]})
        route = parse_model_path(path)
        if route is None:
            return error_response(
                404, f"no route for {request.method} {path}; see the Open Inference Protocol v2"
            )
        return self._model_request(request, route)

    def _health(self, path: str) -> Response:
        if path == "/v2/health/live":
            return json_response({"live": True})
        if path == "/v2/health/ready":
            ready = bool(self.models)
            return json_response({"ready": ready}, 200 if ready else 503)
        return error_response(404, f"no route for {path}")

    def _model_request(self, request: Request, route: ModelRoute) -> Response | Awaitable[Response]:
        runner = self.models.get(route.name)
        if runner is None:
            return error_response(
                404, f"model {route.name!r} is not served here; served: {', '.join(self.models)}"
            )
        if route.version is not None and route.version != runner.version:
            return error_response(
                404, f"model {route.name!r} has no version {route.version!r}; served: {runner.version}"
            )
        if route.action == "infer":
            if request.method != "POST":
                return error_response(405, "use POST for infer")
            return self._infer(runner, request)
        if route.action == "ready":
            return json_response({"name": runner.name, "ready": True})
        return json_response(runner.metadata())

    def _infer(self, runner: ModelRunner, request: Request) -> Response | Awaitable[Response]:
        started = time.perf_counter()
        try:
            parsed = decode_request(
                request.body, request.headers.get("inference-header-content-length"), runner.input_specs
            )
            pending = runner.submit(parsed.inputs)
        except InvalidRequestError as exc:
            self.metrics.requests.labels(runner.name, "400").inc()
            return error_response(400, exc.message)
        done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def finish(result: asyncio.Future[dict[str, np.ndarray]]) -> None:
            done.set_result(self._respond(runner, parsed, result, started))

        pending.add_done_callback(finish)
        return done

    def _respond(
        self,
        runner: ModelRunner,
        parsed: object,
        result: asyncio.Future[dict[str, np.ndarray]],
        started: float,
    ) -> Response:
        from thrifty.serving.oip import InferRequest

        assert isinstance(parsed, InferRequest)
        try:
            outputs = result.result()
        except InvalidRequestError as exc:
            response = error_response(400, exc.message)
        except ServingError as exc:
            response = error_response(500, exc.message)
        else:
            if parsed.requested_outputs is not None:
                unknown = [n for n in parsed.requested_outputs if n not in outputs]
                if unknown:
                    return error_response(
                        400, f"unknown output {unknown[0]!r}; the model has: {', '.join(outputs)}"
                    )
                outputs = {n: outputs[n] for n in parsed.requested_outputs}
            body, header_length = encode_response(runner.name, runner.version, parsed, outputs)
            response = Response(200, body)
            if header_length is not None:
                response.content_type = "application/octet-stream"
                response.headers.append(("inference-header-content-length", str(header_length)))
        self.metrics.requests.labels(runner.name, str(response.status)).inc()
        self.metrics.latency.labels(runner.name).observe(time.perf_counter() - started)
        return response

    def close(self) -> None:
        for runner in self.models.values():
            runner.close()

"""The serving runtime as a Lambda function: the same server, driven by the Lambda Runtime API.

- ``LambdaApp`` loads the variant at init (fetched and verified by sha256, as ``thrifty.container``
  does) and answers function URL events (payload format 2.0) through the Open Inference Protocol
  server: ``{"rawPath": "/v2/models/NAME/infer", "requestContext": {"http": {"method": "POST"}},
  "headers": {...}, "body": "..."}`` → ``{"statusCode", "headers", "body"}``. The bearer token is
  checked as on every target.
- ``run_loop``: the container image's own runtime client (no awslambdaric): GET
  ``/2018-06-01/runtime/invocation/next``, answer, POST ``…/invocation/{id}/response`` (or
  ``…/error``); an init failure is POSTed to ``/runtime/init/error``. ``thrifty.container`` runs
  it when ``AWS_LAMBDA_RUNTIME_API`` is set.
- ``handler``: the entry of a .zip package on the managed Python runtime (init at import).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from thrifty.coldstart import COLD_START
from thrifty.errors import ThriftyError

log = logging.getLogger("thrifty.lambda")
API_VERSION = "2018-06-01"


class LambdaApp:
    """One loaded model and the OIP server, answering function URL events."""

    def __init__(self, env: Mapping[str, str]) -> None:
        from thrifty.container import ContainerConfig, load_server

        started = time.perf_counter()
        self.config = ContainerConfig.from_env(env)
        self.loop = asyncio.new_event_loop()
        self.server = load_server(self.config, self.config.tokens)
        self.init_ms = (time.perf_counter() - started) * 1000
        log.warning(
            "loaded %s in %.0f ms (%d threads)", self.config.model_name, self.init_ms, self.config.threads
        )

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        from thrifty.serving.http import Request

        http_ctx = event.get("requestContext", {}).get("http", {})
        raw = str(event.get("body") or "")
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        path = str(event.get("rawPath") or http_ctx.get("path") or "/")
        query = str(event.get("rawQueryString") or "")
        request = Request(
            method=str(http_ctx.get("method", "POST")).upper(),
            target=path + (f"?{query}" if query else ""),
            path=path,
            query=query,
            headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
            body=body,
            peer=str(http_ctx.get("sourceIp", "")),
        )
        response = self.loop.run_until_complete(self._handle(request))
        text = response.content_type.startswith(("application/json", "text/"))
        return {
            "statusCode": response.status,
            "headers": {"content-type": response.content_type, **dict(response.headers)},
            "body": response.body.decode() if text else base64.b64encode(response.body).decode(),
            "isBase64Encoded": not text,
        }

    async def _handle(self, request: Any) -> Any:
        result = self.server.handle(request)
        if asyncio.isfuture(result) or asyncio.iscoroutine(result):
            return await result
        return result


def _post(
    conn: http.client.HTTPConnection, path: str, payload: Any, headers: Mapping[str, str] | None = None
) -> None:
    conn.request(
        "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    conn.getresponse().read()


def _error(exc: BaseException) -> dict[str, str]:
    message = (
        exc.message + (f" — {exc.hint}" if exc.hint else "") if isinstance(exc, ThriftyError) else str(exc)
    )
    return {"errorMessage": message, "errorType": type(exc).__name__}


def run_loop(api: str, env: Mapping[str, str]) -> int:
    """Serve invocations from the Runtime API at ``api`` (host:port) until the process is stopped."""
    host, _, port = api.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80))
    base = f"/{API_VERSION}/runtime"
    try:
        app = LambdaApp(env)
    except Exception as exc:  # any init failure goes to the Runtime API, or Lambda waits for init
        _post(
            conn,
            f"{base}/init/error",
            _error(exc),
            {"Lambda-Runtime-Function-Error-Type": "Runtime.InitError"},
        )
        return 2
    COLD_START.mark("ready")
    while True:
        conn.request("GET", f"{base}/invocation/next")
        response = conn.getresponse()
        event = json.loads(response.read() or b"{}")
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id", "")
        try:
            answer = app.invoke(event)
        except Exception as exc:  # the Runtime API takes the error; the function keeps serving
            _post(conn, f"{base}/invocation/{request_id}/error", _error(exc))
            continue
        _post(conn, f"{base}/invocation/{request_id}/response", answer)
        if str(event.get("rawPath", "")).endswith("/infer"):
            COLD_START.report()


_APP: LambdaApp | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The .zip package's handler (``thrifty.lambda_runtime.handler``)."""
    global _APP
    if _APP is None:
        _APP = LambdaApp(os.environ)
    return _APP.invoke(event)


if (
    os.environ.get("AWS_LAMBDA_RUNTIME_API")
    and os.environ.get("_HANDLER") == "thrifty.lambda_runtime.handler"
):
    _APP = LambdaApp(os.environ)  # the managed runtime imports the handler during init: load then

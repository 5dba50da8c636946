"""A loopback server that speaks the Lambda Runtime API, to rehearse the runtime as Lambda runs it.

Lambda starts the function's process with ``AWS_LAMBDA_RUNTIME_API=host:port``; the process GETs
``/2018-06-01/runtime/invocation/next`` (held until an event arrives, with the request id in
``Lambda-Runtime-Aws-Request-Id``) and POSTs the answer to ``…/invocation/{id}/response`` or
``…/error``; an init failure goes to ``/runtime/init/error``. ``RuntimeApi`` does the same on
127.0.0.1: ``invoke(event)`` queues an event and waits for its answer, so a test or a benchmark
times a cold start as Lambda would (process start → first answer).
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class RuntimeApi:
    """The Runtime API on a free loopback port (``address`` is what AWS_LAMBDA_RUNTIME_API holds)."""

    events: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    answers: dict[str, queue.Queue[tuple[str, Any]]] = field(default_factory=dict)
    init_errors: list[Any] = field(default_factory=list)
    init_failed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.ids = itertools.count(1)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def invoke(self, event: Any, timeout_s: float = 120.0) -> tuple[str, Any]:
        """Queue ``event``; ("response" | "error" | "init_error", payload) once the runtime answers."""
        request_id = f"req-{next(self.ids)}"
        answer: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.answers[request_id] = answer
        self.events.put((request_id, event))
        waited = 0.0
        while waited < timeout_s:
            try:
                return answer.get(timeout=0.05)
            except queue.Empty:
                waited += 0.05
            if self.init_failed.is_set():
                return "init_error", self.init_errors[-1]
        raise TimeoutError(f"the runtime did not answer {request_id} in {timeout_s} s")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self._send(404, {"errorMessage": f"no route {self.path}"})
                return
            request_id, event = api.events.get()
            self._send(
                200, event, {"Lambda-Runtime-Aws-Request-Id": request_id, "Lambda-Runtime-Deadline-Ms": "0"}
            )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"null")
            if self.path == f"{PREFIX}/init/error":
                api.init_errors.append(payload)
                api.init_failed.set()
            else:
                _, _, rest = self.path.partition(f"{PREFIX}/invocation/")
                request_id, _, kind = rest.partition("/")
                if request_id not in api.answers:
                    self._send(400, {"errorMessage": f"unknown request id {request_id}"})
                    return
                api.answers[request_id].put((kind, payload))
            self._send(202, {"status": "OK"})

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def url_event(path: str, body: Any, token: str | None = None, method: str = "POST") -> dict[str, Any]:
    """A function URL event (payload format 2.0) for ``path`` with a JSON body."""
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1"}},
        "body": json.dumps(body) if body is not None else "",
        "isBase64Encoded": False,
    }

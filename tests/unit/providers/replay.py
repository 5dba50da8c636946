"""Test doubles shared by the provider tests: a fault hook for botocore and a loopback HTTP
server whose routes are Python functions (the replay servers of the GCP, Azure, Kubernetes and
metadata tests)."""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import SHARED_DATA


class CapacityFault:
    """Makes the EC2 client refuse spot launches with InsufficientInstanceCapacity while ``on``.

    A botocore ``before-parameter-build`` hook raises the same ClientError AWS would send (moto
    has no spot market to run out of); every other call still goes to moto.
    """

    def __init__(self, client: Any) -> None:
        self.on = True
        self.refused = 0
        client.meta.events.register("before-parameter-build.ec2.RunInstances", self._maybe_refuse)

    def _maybe_refuse(self, params: dict[str, Any], **_: Any) -> None:
        from botocore.exceptions import ClientError

        if self.on and "InstanceMarketOptions" in params:
            self.refused += 1
            error = {"Error": {"Code": "InsufficientInstanceCapacity", "Message": "no spot capacity"}}
            raise ClientError(error, "RunInstances")  # type: ignore[arg-type]


@functools.cache
def sold_offers(cloud: str) -> dict[str, frozenset[str]]:
    """Where each machine type / VM size is sold, read from the shared price snapshot.

    GCP: zone → machine types; Azure: region → VM sizes (its rows carry no zone). Accelerator-only
    rows (no instance type) are left out. The doubles refuse anything not listed, as the clouds do.
    """
    path = SHARED_DATA / "pricing" / f"{cloud}.csv"
    if not path.is_file():
        pytest.skip(f"price snapshot {path} is missing (the shared data sits beside the checkout)")
    sold: dict[str, set[str]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            where = row["zone"] or row["region"]
            if row["instance_type"] and where:
                sold.setdefault(where, set()).add(row["instance_type"])
    return {where: frozenset(types) for where, types in sold.items()}


#: a route answers (status, JSON body) or (status, JSON body, extra headers)
Handler = Callable[["Request"], tuple[Any, ...]]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # an email.message.Message: case-insensitive lookups
    body: Any
    #: the body's bytes as sent (uploads: the storage doubles check them)
    raw: bytes = b""


@dataclass
class ReplayServer:
    """A loopback HTTP server whose routes are Python functions; it records every request."""

    url: str
    routes: list[tuple[str, str, Handler, str]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def route(self, method: str, path_prefix: str, handler: Handler, contains: str = "") -> None:
        """Answer ``method`` on paths starting with ``path_prefix`` (and holding ``contains``); the
        route added last is tried first."""
        self.routes.insert(0, (method, path_prefix, handler, contains))

    def answer(self, request: Request) -> tuple[Any, ...]:
        self.requests.append(request)
        for method, prefix, handler, contains in self.routes:
            if request.method == method and request.path.startswith(prefix) and contains in request.path:
                return handler(request)
        return 404, {"error": {"code": 404, "message": f"no route for {request.method} {request.path}"}}


def handler_class(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:  # not JSON (UnicodeDecodeError is one): text, or bytes as they came
                try:
                    body = raw.decode()
                except UnicodeDecodeError:
                    body = raw
            request = Request(self.command, parts.path, parse_qs(parts.query), self.headers, body, raw)
            status, payload, *extra = server.answer(request)
            # metadata endpoints answer plain text; a blob download answers bytes
            kind = "application/octet-stream" if isinstance(payload, bytes) else "text/plain"
            headers = {"Content-Type": kind if isinstance(payload, (bytes, str)) else "application/json"}
            data = _encode(payload)
            headers.update({"Content-Length": str(len(data)), **(extra[0] if extra else {})})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return _Handler


def _encode(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    return payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()

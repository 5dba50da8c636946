"""Per-deployment tokens: made once, kept 0600 on the control plane, only the digest goes out;
the smoke test waits for readiness on the OIP path and gives up at its deadline with the cause."""

from __future__ import annotations

import hashlib
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from thrifty import tokens
from thrifty.errors import NotFoundError, ServingError
from thrifty.verify import model_url, wait_ready


def test_a_token_is_made_once_and_only_its_digest_leaves(tmp_path: Path) -> None:
    first = tokens.issue(tmp_path, "minilm")
    assert tokens.issue(tmp_path, "minilm") == first, "a redeploy keeps the deployment's token"
    token = tokens.token_for(tmp_path, "minilm")
    assert hashlib.sha256(token.encode()).hexdigest() == first and token not in first
    path = next((tmp_path / "secrets" / "deployments").iterdir())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tokens.issue(tmp_path, "other") != first
    tokens.forget(tmp_path, "minilm")
    with pytest.raises(NotFoundError, match="redeploy it from here"):
        tokens.token_for(tmp_path, "minilm")


def test_a_digest_token_is_accepted_by_the_server_check() -> None:
    from thrifty.serving import auth
    from thrifty.serving.http import Request

    known = (b"sha256:" + hashlib.sha256(b"s3cret").hexdigest().encode(),)

    def request(header: str) -> Request:
        return Request(
            "POST", "/v2/models/m/infer", "/v2/models/m/infer", "", {"authorization": header}, b"", "10.0.0.9"
        )

    assert auth.check(request("Bearer s3cret"), known) is None
    refused = auth.check(request("Bearer sha256:" + hashlib.sha256(b"s3cret").hexdigest()), known)
    assert refused is not None and refused.status == 401, "the digest itself is not a token"


class _SlowReady(BaseHTTPRequestHandler):
    ready_after = 3  # the model answers ready from the third poll on

    def do_GET(self) -> None:
        type(self).ready_after -= 1
        status = 200 if self.path.endswith("/ready") and type(self).ready_after <= 0 else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_readiness_is_polled_on_the_oip_model_path_until_the_deadline(slow_server: str) -> None:
    url = model_url(slow_server, "minilm")
    assert url == f"{slow_server}/v2/models/minilm"
    assert model_url(f"{url}/", "other") == url, "an endpoint that names its model is kept"
    assert wait_ready(url, None, deadline_s=10.0, poll_s=0.05) < 10.0
    _SlowReady.ready_after = 1000
    with pytest.raises(ServingError, match=r"not ready within 1 s \(HTTP 503"):
        wait_ready(url, None, deadline_s=1.0, poll_s=0.2)

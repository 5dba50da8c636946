"""``thrifty.Client`` against the live app served by uvicorn on loopback (real HTTP)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import thrifty
from tests.unit.api.conftest import make_onnx
from thrifty import errors, read


def test_client_covers_models_plans_deployments_and_admin(api_url: str, tmp_path: Path) -> None:
    with thrifty.Client(api_url) as api:
        uploaded = api.upload_model(make_onnx(tmp_path / "mlp.onnx"), name="mlp")
        assert (uploaded.model, uploaded.created) == ("mlp", True)
        assert [m.model for m in api.models()] == ["mlp"]
        assert isinstance(api.model("mlp"), read.ModelView)
        assert api.variants("mlp") == []
        assert api.deployments() == [] and api.plans() == []
        assert {p["name"] for p in api.policies()} >= {"fixed"}
        assert "local" in {t["name"] for t in api.targets()}
        assert api.costs().deployments == [] and api.alerts() == []
        assert api.recommendations().recommendations == []
        admin = api.create_token("ops", "admin")  # from now on, loopback needs a token too
        with pytest.raises(errors.AccessError, match="missing bearer token"):
            api.models()
    with thrifty.Client(api_url, token=admin.token) as api:
        token = api.create_token("ci", "viewer")
        assert token.token and [t.name for t in api.tokens()] == ["ops", "ci"]
        assert api.audit()[0]["action"] == "tokens.create" and api.audit()[0]["actor"] == "ops"
    with thrifty.Client(api_url, token=token.token) as viewer:
        assert [m.model for m in viewer.models()] == ["mlp"]
        with pytest.raises(errors.AccessError, match="'deployer'") as refused:
            viewer.hibernate("mlp")
        assert refused.value.status == 403 and "--role deployer" in (refused.value.hint or "")


def test_refusals_raise_the_error_the_server_named(api_url: str) -> None:
    with thrifty.Client(api_url) as api:
        with pytest.raises(errors.NotFoundError, match="no model named 'nope'") as caught:
            api.model("nope")
        assert caught.value.status_code == 404  # type: ignore[attr-defined]
        with pytest.raises(errors.NotFoundError, match="nope"):
            api.alerts("nope")
        with pytest.raises(errors.NotFoundError, match="nope"):
            api.apply_recommendation("nope", "teleport")
        with pytest.raises(errors.NotFoundError, match="nope"):
            api.undo_recommendation("nope")
        with pytest.raises(errors.NotFoundError, match="nope"):
            api.applied_recommendations("nope")
        with pytest.raises(errors.ThriftyError, match="p95_ms"):
            api.make_plan("m", p95_ms=-1, rps=1)


class _Flaky:
    """An HTTP server that answers 503 ``fail`` times, then a JSON page."""

    def __init__(self, fail: int, status: int = 503) -> None:
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.calls += 1
                code, body = (status, b'{"error":"X","message":"busy"}') if outer.calls <= fail else (
                    200, b'{"items":[],"total":0,"offset":0,"limit":500,"next_offset":null}')  # fmt: skip
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize(("fail", "status", "ok"), [(2, 503, True), (2, 429, True), (9, 503, False)])
def test_retries_on_429_and_5xx_with_backoff(
    monkeypatch: pytest.MonkeyPatch, fail: int, status: int, ok: bool
) -> None:
    from thrifty import sdk

    monkeypatch.setattr(sdk, "RETRY_DELAYS_S", (0.01, 0.02, 0.04, 0.08))
    flaky = _Flaky(fail, status)
    try:
        with thrifty.Client(flaky.url) as api:
            if ok:
                assert api.models() == []
            else:
                with pytest.raises(errors.ThriftyError, match="busy"):
                    api.models()
        assert flaky.calls == (fail + 1 if ok else 5)
    finally:
        flaky.server.shutdown()
        flaky.server.server_close()

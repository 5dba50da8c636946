"""The management API over real HTTP: answers, pages, uploads and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.unit.api.conftest import make_onnx


def _artifacts(home: Path) -> list[Path]:
    folder = home / "artifacts"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_openapi_document_and_an_empty_registry(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    assert "/api/v1/models" in doc["paths"] and "/api/v1/deployments/{name}/rollback" in doc["paths"]
    page = http.get("/models").json()
    assert page == {"items": [], "total": 0, "offset": 0, "limit": 50, "next_offset": None}


def test_upload_registers_a_model_like_ingest(http: httpx.Client, tmp_path: Path, thrifty_home: Path) -> None:
    import hashlib

    model = make_onnx(tmp_path / "mlp.onnx")
    answer = http.post("/models", files={"file": ("mlp.onnx", model.read_bytes())}, data={"name": "mlp"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["upload_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest() == body["sha256"]
    assert (body["model"], body["version"], body["format"], body["created"]) == ("mlp", 1, "onnx", True)
    again = http.post("/models", files={"file": ("mlp.onnx", model.read_bytes())}, data={"name": "mlp"})
    assert again.json()["created"] is False and again.json()["version"] == 1
    listed = http.get("/models").json()
    assert [m["model"] for m in listed["items"]] == ["mlp"]
    assert http.get("/models/mlp").json()["versions"][0]["signature"]["inputs"][0]["name"] == "x"
    assert not list((thrifty_home / "uploads").iterdir())  # staging is cleaned up


@pytest.mark.parametrize(
    ("filename", "content", "status", "error"),
    [
        ("../../etc/evil.onnx", b"x" * 10, 400, "UnsafeModelError"),
        ("..\\evil.onnx", b"x" * 10, 400, "UnsafeModelError"),
        ("sub/evil.onnx", b"x" * 10, 400, "UnsafeModelError"),
        ("broken.onnx", b"\x08\x07not an onnx model at all", 400, "CorruptModelError"),
        ("notes.txt", b"hello", 400, "UnknownFormatError"),
    ],
    ids=["traversal", "backslash", "folder", "corrupt", "unknown-format"],
)
def test_bad_uploads_change_nothing(
    http: httpx.Client, thrifty_home: Path, filename: str, content: bytes, status: int, error: str
) -> None:
    answer = http.post("/models", files={"file": (filename, content)}, data={"name": "bad"})
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    assert answer.json()["fix"]
    assert http.get("/models").json()["total"] == 0
    assert _artifacts(thrifty_home) == []
    assert not (thrifty_home / "uploads").exists() or not list((thrifty_home / "uploads").iterdir())


def test_malformed_and_empty_multipart_bodies(http: httpx.Client) -> None:
    garbage = http.post(
        "/models",
        content=b"--xyz\r\nnot a header line\r\n\r\n",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert garbage.status_code == 400 and garbage.json()["error"] in ("CorruptModelError", "ConfigError")
    not_multipart = http.post("/models", json={"file": "abc"})
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.json()["message"]
    no_file = http.post("/models", data={"name": "x"}, files={"other": ("", b"")})
    assert no_file.status_code == 400


def test_an_oversized_upload_is_cut_off(
    thrifty_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.api.conftest import serving
    from thrifty import runtime
    from thrifty.api import create_app

    monkeypatch.setenv("THRIFTY_MAX_MODEL_BYTES", "4000")
    runtime.reset()
    model = make_onnx(tmp_path / "mlp.onnx")
    assert model.stat().st_size > 4000
    with (
        serving(create_app(runtime.get_settings())) as url,
        httpx.Client(base_url=url, trust_env=False) as http,
    ):
        answer = http.post("/api/v1/models", files={"file": ("mlp.onnx", model.read_bytes())})
        assert answer.status_code == 413 and answer.json()["error"] == "ModelTooLargeError"

        def chunks():  # no Content-Length: the limit is enforced while streaming
            boundary = b"--b0undary"
            yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n'
            for _ in range(10):
                yield b"\0" * 4096
            yield b"\r\n" + boundary + b"--\r\n"

        streamed = http.post(
            "/api/v1/models",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b0undary"},
        )
        assert streamed.status_code == 413, streamed.text
        assert http.get("/api/v1/models").json()["total"] == 0
    assert _artifacts(thrifty_home) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/models/nope"),
        ("GET", "/models/nope/variants"),
        ("GET", "/plans/999"),
        ("GET", "/deployments/nope"),
        ("GET", "/deployments/nope/events"),
        ("GET", "/operations/0123abcd"),
        ("POST", "/deployments/nope/hibernate"),
        ("POST", "/deployments/nope/update"),
        ("DELETE", "/deployments/nope"),
        ("DELETE", "/tokens/42"),
        ("GET", "/webhooks/42/deliveries"),
        ("GET", "/reports/nope"),
    ],
)
def test_unknown_ids_are_404_with_a_fix(http: httpx.Client, method: str, path: str) -> None:
    answer = http.request(method, path, json={} if method == "POST" else None)
    assert answer.status_code == 404, answer.text
    body = answer.json()
    assert body["error"] == "NotFoundError" and body["message"] and "Traceback" not in answer.text


def test_invalid_fields_are_a_json_422_not_a_traceback(http: httpx.Client) -> None:
    answer = http.post("/plans", json={"model": "m", "p95_ms": -1})
    assert answer.status_code == 422
    assert answer.json()["error"] == "ValidationError" and "p95_ms" in answer.json()["message"]


def test_long_operations_without_prefect_are_501_and_leave_nothing(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thrifty import runtime

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert http.post("/deployments", json={"model": "minilm"}).status_code == 404  # not registered
    registry = runtime.registry()
    art = registry.upsert_artifact("b" * 64, 10, "/s/b")
    registry.add_model_version(
        "minilm", sha256="b" * 64, artifact=art, format="onnx", size_bytes=10, source_path="/m"
    )
    answer = http.post("/deployments", json={"model": "minilm"})
    assert answer.status_code == 501 and answer.json()["error"] == "NotAvailableError"
    assert "Prefect" in answer.json()["message"]
    assert http.get("/operations").json()["total"] == 0


def test_pages_stay_under_one_megabyte(thrifty_home: Path, http: httpx.Client) -> None:
    from thrifty import runtime

    registry = runtime.registry()
    big = {"inputs": [{"name": "x" * 5000, "dtype": "float32", "shape": [1]}] * 10}
    for i in range(40):
        sha = f"{i:064x}"
        art = registry.upsert_artifact(sha, 10, f"/s/{sha}")
        registry.add_model_version(f"m{i:02d}", sha256=sha, artifact=art, format="onnx", size_bytes=10,
                                   source_path="/x", signature=big)  # fmt: skip
    first = http.get("/models", params={"limit": 500})
    assert len(first.content) <= 1_000_000
    body = first.json()
    assert body["total"] == 40 and 0 < len(body["items"]) < 40 and body["next_offset"] == len(body["items"])
    rest = http.get("/models", params={"offset": body["next_offset"], "limit": 500}).json()
    names = [m["model"] for m in body["items"] + rest["items"]]
    assert names == sorted(names) and len(set(names)) == len(body["items"]) + len(rest["items"])


def test_hibernate_through_the_api_is_audited_before_and_after(
    http: httpx.Client, thrifty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port
    from thrifty import runtime

    monkeypatch.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))  # no gateway answers there
    runtime.get_settings.cache_clear()
    registry = runtime.registry()
    registry.upsert_deployment("svc", provider="local", state="running", replicas=2, spec={"replicas": 2})
    answer = http.post("/deployments/svc/hibernate")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["state"], answer.json()["replicas_desired"]) == ("hibernated", 0)
    assert [e["kind"] for e in http.get("/deployments/svc/events").json()["items"]] == ["hibernate"]
    entry = http.get("/audit").json()["items"][0]
    assert (entry["action"], entry["target"], entry["actor"]) == ("deployments.hibernate", "svc", "loopback")
    assert (entry["before"]["state"], entry["before"]["replicas"]) == ("running", 2)
    assert (entry["after"]["state"], entry["after"]["replicas_desired"]) == ("hibernated", 0)
    # cloud deployments: tests/unit/providers/test_api_operate.py (moto and the replay doubles)
    assert http.post("/deployments/nope/scale", json={"replicas": 3}).status_code == 404
    assert http.post("/deployments/svc/scale", json={"replicas": -1}).status_code == 422


def test_costs_and_alerts_answer_from_the_ledger_and_the_anomaly_store(
    thrifty_home: Path, http: httpx.Client
) -> None:
    from bench.fleet import seed_fleet
    from tests.web.conftest import LEDGER_USD, seed_ledger_and_alert
    from thrifty import read, runtime

    registry = runtime.registry()
    seed_fleet(registry, 3, 300)
    seed_ledger_and_alert(registry)
    answer = http.get("/costs").json()
    assert [d["deployment"] for d in answer["deployments"]] == ["fleet-0000", "fleet-0001", "fleet-0002"]
    one = http.get("/costs", params={"name": "fleet-0001"}).json()["deployments"][0]
    expected = read.costs(registry, "fleet-0001").deployments[0]
    assert (
        one["compute_usd"] >= LEDGER_USD["compute"]
        and one["plan_usd_per_month"] == expected.plan_usd_per_month
    )
    for field in ("forecast_month_usd", "usd_per_million_requests_reservation", "usd_per_million_requests_usage",
                  "baseline_usd_per_month"):  # fmt: skip
        assert one[field] is not None and one[field] == pytest.approx(getattr(expected, field), rel=0.05)
    for field in ("transfer_usd", "egress_usd", "egress_gib", "artifact_copy_usd"):  # the ledger's transfer
        assert one[field] == pytest.approx(getattr(expected, field))
    alerts = http.get("/alerts").json()
    assert [(a["deployment"], a["kind"]) for a in alerts] == [("fleet-0002", "latency.p95")]
    assert http.get("/alerts", params={"name": "fleet-0001"}).json() == []
    assert http.get("/alerts", params={"name": "nope"}).status_code == 404


def test_applying_a_recommendation_starts_its_flow_run_or_changes_nothing(
    thrifty_home: Path, http: httpx.Client, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """minilm-prod's replayed bursty day has deploy-model recommendations; without a Prefect API
    applying one is a 501 that leaves no operation behind, an unknown kind a 400 naming the ones it has."""
    from datetime import UTC, datetime

    from tests.unit.monitor.test_recommend import NAME, deploy_planned, replay_functions_day
    from thrifty import runtime

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    registry = runtime.registry()
    deploy_planned(registry, days=1.0, now=datetime.now(UTC))
    replay_functions_day(registry, shared_data, now=datetime.now(UTC))
    listed = http.get("/recommendations", params={"name": NAME, "days": 1}).json()["recommendations"]
    kind = next(r["kind"] for r in listed if r["flow"] == "deploy-model/deploy-model")
    applied = http.post(f"/recommendations/{NAME}/{kind}/apply", params={"days": 1})
    assert applied.status_code == 501 and "Prefect" in applied.json()["message"]
    assert http.get("/operations").json()["total"] == 0
    wrong = http.post(f"/recommendations/{NAME}/teleport/apply", params={"days": 1})
    assert wrong.status_code == 400 and kind in wrong.json()["fix"]


def test_a_hibernation_policy_applies_at_once_and_undoes_through_the_api(
    thrifty_home: Path, http: httpx.Client, shared_data: Path
) -> None:
    """No flow run: the policy is stored for the deployment (the sweep reads it), recorded and
    audited; undo restores the previous one; a second undo is a 400 with the fix."""
    from tests.unit.monitor.test_applied import seed_hibernation_advice
    from tests.unit.monitor.test_recommend import NAME
    from thrifty import runtime
    from thrifty.policies.chosen import chosen_policy

    registry = runtime.registry()
    seed_hibernation_advice(registry, shared_data)
    assert http.post(f"/recommendations/{NAME}/undo").status_code == 404  # nothing applied yet
    applied = http.post(f"/recommendations/{NAME}/hibernation/apply", params={"days": 1})
    assert applied.status_code == 202, applied.text
    body = applied.json()
    assert body["operation"] is None and body["applied"]["policy_before"] is None
    assert chosen_policy(registry, NAME) == body["applied"]["policy_after"] != "hybrid-histogram"
    listed = http.get(f"/recommendations/{NAME}/applied").json()
    assert [(a["id"], a["kind"], a["undone_at"]) for a in listed] == [
        (body["applied"]["id"], "hibernation", None)
    ]
    undone = http.post(f"/recommendations/{NAME}/undo", params={"applied_id": body["applied"]["id"]})
    assert undone.status_code == 202, undone.text
    assert undone.json()["applied"]["undone_by"] == "loopback" and chosen_policy(registry, NAME) is None
    again = http.post(f"/recommendations/{NAME}/undo")
    assert again.status_code == 400 and "already undone" in again.json()["message"] and again.json()["fix"]
    entries = http.get("/audit").json()["items"]  # refusals are audited too, under the request's path
    actions = [(e["action"], e["actor"]) for e in entries if e["action"].startswith("recommendations.")]
    assert actions == [("recommendations.undo", "loopback"), ("recommendations.apply", "loopback")]

"""The models page's upload form in a real browser: a small ONNX model is registered and offered
for one-click deploy; a corrupt file and a forged CSRF token are refused and store nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def registry() -> Any:
    from thrifty import runtime

    return runtime.registry()


def model_names() -> set[str]:
    from thrifty import read

    return {m.model for m in read.models(registry())}


def leftover_staging(home: Path) -> list[Path]:
    uploads = home / "uploads"
    return list(uploads.iterdir()) if uploads.is_dir() else []


def test_upload_a_small_onnx_model_then_deploy_link(page: Any, web_home: Path, tmp_path: Path) -> None:
    import hashlib

    from tests.flows.test_deploy_model import build_classifier

    model = build_classifier(tmp_path / "tiny-upload.onnx")
    assert "tiny-upload-web" not in model_names()
    page.goto("/models")
    page.set_input_files("#upload input[name=file]", str(model))
    page.fill("#upload input[name=name]", "tiny-upload-web")
    page.click("#upload button")
    page.wait_for_url("**/models?uploaded=*")
    panel = page.locator("#uploaded").inner_text()
    assert "tiny-upload-web version 1" in panel
    assert hashlib.sha256(model.read_bytes()).hexdigest() in panel
    assert "tiny-upload-web" in page.locator("#models").inner_text()
    assert "tiny-upload-web" in model_names()
    assert leftover_staging(web_home) == []
    page.click("#deploy-uploaded")
    page.wait_for_url("**/deploy?model=tiny-upload-web")
    assert page.input_value("#deploy input[name=model]") == "tiny-upload-web"


def test_a_corrupt_file_is_an_error_panel_and_stores_nothing(
    page: Any, web_home: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "broken.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf model" * 20)
    before = model_names()
    page.goto("/models")
    page.set_input_files("#upload input[name=file]", str(corrupt))
    page.click("#upload button")
    alert = page.locator("[role=alert]")
    text = alert.inner_text()
    assert text.startswith("broken.onnx is not a readable ONNX model"), text  # not the staging path
    assert "fix: " in text and "Traceback" not in page.content()
    assert model_names() == before
    assert leftover_staging(web_home) == []


def test_a_traversal_file_name_is_refused(page: Any, web_home: Path) -> None:
    page.goto("/models")
    before = model_names()
    payload = {"name": "../evil.onnx", "mimeType": "application/octet-stream", "buffer": b"\x08\x07"}
    token = page.input_value("#upload input[name=csrf_token]")
    answer = page.request.post("/models/upload", multipart={"csrf_token": token, "file": payload})
    assert answer.status == 400 and "must be a bare file name" in answer.text()
    assert model_names() == before and not (web_home / "evil.onnx").exists()
    assert leftover_staging(web_home) == []


def test_a_forged_csrf_token_is_refused_and_stores_nothing(page: Any, web_home: Path, tmp_path: Path) -> None:
    from tests.flows.test_deploy_model import build_classifier

    model = build_classifier(tmp_path / "forged.onnx", seed=3)
    before = model_names()
    page.goto("/models")
    page.set_input_files("#upload input[name=file]", str(model))
    page.eval_on_selector("#upload input[name=csrf_token]", "e => e.value = 'forged'")
    page.click("#upload button")
    assert "CSRF token does not match" in page.locator("[role=alert]").inner_text()
    assert model_names() == before and "forged" not in model_names()
    assert leftover_staging(web_home) == []


def test_no_file_and_an_oversized_file_are_refused_with_the_fix(
    page: Any, web_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.flows.test_deploy_model import build_classifier
    from thrifty.settings import get_settings

    page.goto("/models")
    token = page.input_value("#upload input[name=csrf_token]")
    before = model_names()
    no_file = page.request.post("/models/upload", multipart={"csrf_token": token, "name": "nothing"})
    assert no_file.status == 400 and "the upload has no file" in no_file.text()
    model = build_classifier(tmp_path / "big.onnx", seed=5)
    limit_bytes = model.stat().st_size // 2
    monkeypatch.setenv("THRIFTY_MAX_MODEL_BYTES", str(limit_bytes))
    get_settings.cache_clear()  # the server thread reads the settings through get_settings
    try:
        page.set_input_files("#upload input[name=file]", str(model))
        page.click("#upload button")
        text = page.locator("[role=alert]").inner_text()
    finally:
        monkeypatch.delenv("THRIFTY_MAX_MODEL_BYTES")
        get_settings.cache_clear()
    assert f"over the limit of {limit_bytes}" in text and "THRIFTY_MAX_MODEL_BYTES" in text
    assert model_names() == before and "big" not in model_names()
    assert leftover_staging(web_home) == []

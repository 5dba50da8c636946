"""The serving runtime's import graph stays lean: what a cold start imports is what it pays for.

A fresh interpreter runs the runtime's serving path as the image does (the Lambda app loads a
variant from a mounted store and answers one function URL event; the HTTP server's modules are
imported too) and reports every module it imported. None of the heavy modules the rest of thrifty
uses (the CLI, the registry, pydantic, torch, …) may be among them. A planted import proves the
check sees one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thrifty.artifacts.local import LocalStore

#: top-level packages (or thrifty modules) the runtime's serving path must never import
HEAVY = (
    "pydantic", "sqlalchemy", "alembic", "rich", "typer", "click", "prefect", "torch", "transformers",
    "pandas", "sklearn", "scipy", "onnx", "httpx", "yaml", "boto3", "botocore",
    "thrifty.cli", "thrifty.registry", "thrifty.providers", "thrifty.planner", "thrifty.sdk", "thrifty.optimize",
)  # fmt: skip

SERVE = """
import json, sys
{planted}
from thrifty.lambda_runtime import LambdaApp
from thrifty.lambda_rehearsal import url_event
import thrifty.serving.app, thrifty.serving.http  # the HTTP server's path (thrifty.container.serve)
app = LambdaApp({env!r})
request = {{"inputs": [{{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 1, 2, 3]}}]}}
answer = app.invoke(url_event("/v2/models/mlp/infer", request))
print(json.dumps({{"status": answer["statusCode"], "modules": sorted(sys.modules)}}))
"""


def serving_path_modules(mlp_path: Path, tmp_path: Path, planted: str = "") -> dict[str, object]:
    sha = LocalStore(tmp_path / "store").put_file(mlp_path).sha256
    env = {"THRIFTY_MODEL_NAME": "mlp", "THRIFTY_ARTIFACT_STORE_URL": str(tmp_path / "store"),
           "THRIFTY_ARTIFACT_SHA256": sha, "THRIFTY_MODEL_DIR": str(tmp_path / "models")}  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("THRIFTY_", "AWS_LAMBDA"))}
    done = subprocess.run(
        [sys.executable, "-c", SERVE.format(env=env, planted=planted)],
        env=clean, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def heavy_in(modules: list[str]) -> list[str]:
    return sorted({h for h in HEAVY for m in modules if m == h or m.startswith(h + ".")})


def test_the_serving_path_imports_none_of_the_heavy_modules(mlp_path: Path, tmp_path: Path) -> None:
    report = serving_path_modules(mlp_path, tmp_path)
    assert report["status"] == 200
    modules = report["modules"]
    assert isinstance(modules, list)
    assert {"onnxruntime", "numpy", "tokenizers", "thrifty.serving.server"} <= set(modules)
    assert heavy_in(modules) == []


@pytest.mark.parametrize("planted", ["pydantic", "thrifty.cli"])
def test_the_check_sees_a_planted_heavy_import(planted: str, mlp_path: Path, tmp_path: Path) -> None:
    report = serving_path_modules(mlp_path, tmp_path, planted=f"import {planted}")
    modules = report["modules"]
    assert isinstance(modules, list)
    assert planted in heavy_in(modules)

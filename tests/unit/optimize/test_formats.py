"""Formats beyond ONNX and Hugging Face folders reach a deployable ONNX variant: scikit-learn
(skops), XGBoost (JSON / UBJ), LightGBM (text), torch.export (.pt2); TorchScript and bare state
dicts are refused with the reason. Models are fitted here on scikit-learn's bundled data sets."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty import runtime
from thrifty.errors import OptimizeError, UnsafeModelError


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return x.astype(np.float32), y


def _skops(model: Any, path: Path) -> Path:
    import skops.io as sio

    sio.dump(model, str(path))
    return path


def classic_files(
    root: Path, iris: tuple[np.ndarray, np.ndarray], diabetes: tuple[np.ndarray, np.ndarray]
) -> dict[str, tuple[Path, str, str]]:
    """name → (file, format, task)."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (xc, yc), (xr, yr) = iris, diabetes
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(xc, yc)
    reg = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(xr, yr)
    xgb_clf = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, xgb.DMatrix(xc, yc), 8
    )
    xgb_reg = xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(xr, yr), 8)
    lgb_clf = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(xc, yc),
        8,
    )
    xgb_clf.save_model(str(root / "xgb.json"))
    xgb_reg.save_model(str(root / "xgb.ubj"))
    lgb_clf.save_model(str(root / "lgb.txt"))
    return {
        "sk-clf": (_skops(clf, root / "clf.skops"), "sklearn", "classification"),
        "sk-reg": (_skops(reg, root / "reg.skops"), "sklearn", "regression"),
        "xgb-clf": (root / "xgb.json", "xgboost", "classification"),
        "xgb-reg": (root / "xgb.ubj", "xgboost", "regression"),
        "lgb-clf": (root / "lgb.txt", "lightgbm", "classification"),
    }


@pytest.mark.slow
def test_classic_models_convert_and_keep_their_predictions(
    thrifty_home: Path, tmp_path: Path, iris: Any, diabetes: Any
) -> None:
    from thrifty.ingest import ingest_model
    from thrifty.optimize import pipeline
    from thrifty.optimize.config import Tolerance

    registry, store = runtime.registry(), runtime.store()
    for name, (path, fmt, task) in classic_files(tmp_path, iris, diabetes).items():
        version = ingest_model(path, name, registry=registry, store=store).version
        assert (version.format, version.task) == (fmt, task), name
        work, skipped = pipeline.work_dir_for(version, thrifty_home), {}
        variants = pipeline.optimize_version(
            version,
            pipeline.DEFAULT_TECHNIQUES,
            registry=registry,
            store=store,
            work_dir=work,
            skipped=skipped,
        )
        assert [v.name for v in variants] == ["onnx-fp32", "onnx-graph"], name
        assert "does not apply" in skipped["dynamic_int8"]
        _, evals = pipeline.source_and_evals(version, store, work)
        for variant in variants:
            judged = pipeline.judge_variant(registry, store, variant, evals, Tolerance())
            assert judged.status == "accepted", (name, judged.rejection_reason)
            if task == "classification":
                assert judged.fidelity["prediction_agreement"] == 1.0
            else:
                assert judged.fidelity["max_abs_error"] <= 1e-3 * judged.fidelity["reference_abs_max"]


def test_a_regressor_off_by_more_than_the_tolerance_is_rejected() -> None:
    from thrifty.bench.fidelity import judge, regression_fidelity

    reference = np.linspace(-100, 100, 50, dtype=np.float32)
    accepted, _ = judge(regression_fidelity(reference, reference + 0.05))
    rejected, reason = judge(regression_fidelity(reference, reference + 0.5))
    assert accepted and not rejected and reason and "max_abs_error 0.5000 > 0.1000" in reason


def test_skops_file_naming_a_foreign_type_is_refused(thrifty_home: Path, tmp_path: Path, iris: Any) -> None:
    from sklearn.preprocessing import FunctionTransformer

    from thrifty.ingest import ingest_model

    model = FunctionTransformer(func=_not_sklearn).fit(iris[0])
    path = _skops(model, tmp_path / "custom.skops")
    with pytest.raises(UnsafeModelError, match="_not_sklearn"):
        ingest_model(path, "custom", registry=runtime.registry(), store=runtime.store())
    assert runtime.registry().list_models() == []


def _not_sklearn(x: Any) -> Any:
    return x


def test_pickled_sklearn_model_is_refused_with_the_skops_fix(
    thrifty_home: Path, tmp_path: Path, iris: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    from thrifty.ingest import ingest_model

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression(max_iter=200).fit(*iris), protocol=4))
    with pytest.raises(UnsafeModelError) as caught:
        ingest_model(path, "pickled", registry=runtime.registry(), store=runtime.store())
    assert caught.value.hint and "skops.io.dump" in caught.value.hint


@pytest.fixture(scope="module")
def torch_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import warnings

    import torch

    root = tmp_path_factory.mktemp("torch-archives")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.randn(4, 8),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(root / "model.pt2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(root / "model.ts"))
    torch.save(model.state_dict(), root / "weights.pt")
    return {"pt2": root / "model.pt2", "ts": root / "model.ts", "state_dict": root / "weights.pt"}


@pytest.mark.slow
def test_torch_export_archive_reaches_onnx_and_matches_pytorch(
    thrifty_home: Path, torch_archives: dict[str, Path]
) -> None:
    from thrifty.ingest import ingest_model
    from thrifty.optimize import pipeline
    from thrifty.optimize.config import Tolerance

    registry, store = runtime.registry(), runtime.store()
    version = ingest_model(torch_archives["pt2"], "pt2", registry=registry, store=store).version
    work = pipeline.work_dir_for(version, thrifty_home)
    variants = pipeline.optimize_version(
        version, ("export", "graph", "dynamic_int8"), registry=registry, store=store, work_dir=work
    )
    _, evals = pipeline.source_and_evals(version, store, work)
    fp32 = pipeline.judge_variant(registry, store, variants[0], evals, Tolerance())
    assert fp32.status == "accepted" and fp32.fidelity["top1_agreement"] == 1.0
    assert len(evals.reference) >= 64  # batches beyond the example's 4 rows: the batch axis stayed dynamic


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        ("ts", "TorchScript cannot be exported here: a TorchScript archive records"),
        ("state_dict", "the module's code"),
    ],
)
def test_torchscript_and_bare_state_dicts_are_refused_with_the_reason(
    thrifty_home: Path, torch_archives: dict[str, Path], archive: str, message: str
) -> None:
    from thrifty.ingest import ingest_model
    from thrifty.optimize import pipeline

    registry, store = runtime.registry(), runtime.store()
    version = ingest_model(torch_archives[archive], archive, registry=registry, store=store).version
    with pytest.raises(OptimizeError, match=message) as caught:
        pipeline.optimize_version(
            version,
            ("export",),
            registry=registry,
            store=store,
            work_dir=pipeline.work_dir_for(version, thrifty_home),
        )
    assert caught.value.hint
    assert registry.list_variants(version.id) == []

"""Classic models — scikit-learn, XGBoost, LightGBM — read without unrestricted pickle.

- scikit-learn: a skops file (``skops.io.dump``). skops rebuilds objects from a schema instead of
  running pickle's opcodes; a file naming a type outside scikit-learn / numpy / scipy is refused
  with the names. A plain pickle or joblib file is refused (see ``SKLEARN_HINT``).
- XGBoost: its own JSON or UBJ model format (``Booster.save_model("model.json" | "model.ubj")``).
- LightGBM: its text model format (``Booster.save_model("model.txt")``).

Each loader returns the library's object; ``predict`` gives what the converted ONNX model's first
output must match: labels for classifiers, values for regressors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import CorruptModelError, UnsafeModelError
from thrifty.ingest.types import ModelInfo

SKLEARN_HINT = (
    "save a scikit-learn model with skops (skops.io.dump(model, 'model.skops')); XGBoost and "
    "LightGBM models with their own save_model ('model.json' / 'model.ubj' / 'model.txt')"
)
#: module prefixes whose types a skops file may name
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "_operator.")
CLASSIC_FORMATS = ("sklearn", "xgboost", "lightgbm")


def is_lightgbm_text(head: bytes) -> bool:
    return head.startswith(b"tree\nversion=") or head.startswith(b"tree\r\nversion=")


def is_xgboost(path: Path, head: bytes) -> bool:
    if path.suffix.lower() == ".ubj" or (head.startswith(b"{L") and b"learner" in head):
        return True
    return head.startswith(b'{"learner"')


def load_sklearn(path: Path) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except Exception as exc:  # skops raises many types for a damaged archive
        raise CorruptModelError(f"{path} is not a readable skops file: {exc}", hint=SKLEARN_HINT) from exc
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise UnsafeModelError(
            f"{path} names types outside scikit-learn, numpy and scipy: {', '.join(refused[:8])}",
            hint="only plain scikit-learn estimators and pipelines are accepted; " + SKLEARN_HINT,
        )
    try:
        return sio.load(str(path), trusted=list(untrusted))
    except Exception as exc:
        raise CorruptModelError(f"{path} could not be loaded by skops: {exc}", hint=SKLEARN_HINT) from exc


def load_xgboost(path: Path) -> Any:
    import xgboost as xgb

    booster = xgb.Booster()
    try:  # from bytes: XGBoost tells JSON from UBJ by content (stored blobs have no suffix)
        booster.load_model(bytearray(path.read_bytes()))
    except xgb.core.XGBoostError as exc:
        raise CorruptModelError(
            f"{path} is not a readable XGBoost model: {str(exc).splitlines()[0]}", hint=SKLEARN_HINT
        ) from exc
    return booster


def load_lightgbm(path: Path) -> Any:
    import lightgbm as lgb

    try:
        return lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise CorruptModelError(f"{path} is not a readable LightGBM model: {exc}", hint=SKLEARN_HINT) from exc


def load_classic(format: str, path: Path) -> Any:
    loaders = {"sklearn": load_sklearn, "xgboost": load_xgboost, "lightgbm": load_lightgbm}
    return loaders[format](path)


def describe(format: str, model: Any) -> dict[str, Any]:
    """task (classification | regression), n_features, classes and the estimator's name."""
    if format == "sklearn":
        from sklearn.base import is_classifier

        classes = getattr(model, "classes_", None)
        return {
            "task": "classification" if is_classifier(model) else "regression",
            "n_features": int(getattr(model, "n_features_in_", 0)) or None,
            "classes": None if classes is None else len(classes),
            "estimator": type(model).__name__,
        }
    if format == "xgboost":
        config = json.loads(model.save_config())
        objective = config["learner"]["objective"]["name"]
        classes = int(config["learner"]["learner_model_param"].get("num_class", "0"))
        return {
            "task": "classification" if objective.startswith(("binary:", "multi:")) else "regression",
            "n_features": int(model.num_features()),
            "classes": max(classes, 2) if objective.startswith(("binary:", "multi:")) else None,
            "estimator": f"xgboost {objective}",
        }
    objective = str(model.params.get("objective") or _lightgbm_objective(model))
    classifier = objective.startswith(("binary", "multiclass", "multiclassova"))
    return {
        "task": "classification" if classifier else "regression",
        "n_features": int(model.num_feature()),
        "classes": max(int(model.num_model_per_iteration()), 2) if classifier else None,
        "estimator": f"lightgbm {objective}",
    }


def _lightgbm_objective(model: Any) -> str:
    for line in str(model.model_to_string(num_iteration=0)).splitlines():
        if line.startswith("objective="):
            return line.split("=", 1)[1].split(" ")[0]
    return "regression"


def predict(format: str, model: Any, inputs: np.ndarray) -> np.ndarray:
    """Labels (classifiers) or values (regressors), as the ONNX model's first output gives them."""
    if format == "sklearn":
        return np.asarray(model.predict(inputs))
    about = describe(format, model)
    if format == "xgboost":
        import xgboost as xgb

        raw = np.asarray(model.predict(xgb.DMatrix(inputs)))
    else:
        raw = np.asarray(model.predict(inputs))
    if about["task"] == "regression":
        return raw.astype(np.float32)
    if raw.ndim == 2:
        return np.asarray(raw.argmax(axis=1), dtype=np.int64)  # class probabilities
    if "binary" in about["estimator"]:
        return (raw > 0.5).astype(np.int64)  # the positive class's probability
    return raw.astype(np.int64)  # multi:softmax gives the labels


def inspect_classic(format: str, path: Path) -> ModelInfo:
    model = load_classic(format, path)
    about = describe(format, model)
    n_features = about["n_features"] or "?"
    output = (
        {"name": "label", "dtype": "int64", "shape": ["batch"]}
        if about["task"] == "classification"
        else {"name": "variable", "dtype": "float32", "shape": ["batch", 1]}
    )
    return ModelInfo(
        format=format,
        task=about["task"],
        signature={
            "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", n_features]}],
            "outputs": [output],
        },
        details={k: v for k, v in about.items() if k != "task"},
    )

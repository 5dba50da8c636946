"""Classic models to ONNX: scikit-learn with skl2onnx, XGBoost and LightGBM with onnxmltools.

Classifiers are converted without ZipMap, so the outputs are two tensors: ``label`` (what the
fidelity check compares: prediction agreement) and ``probabilities``. Regressors give
``variable`` (compared by max absolute error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.errors import ConfigError, OptimizeError
from thrifty.optimize._io import prepare_out, save_config, tmp_path_for


@dataclass
class ClassicExportConfig:
    """``opset`` of the default domain; onnxmltools' tree converters support up to 15."""

    opset: int = 15
    ml_opset: int = 3
    zipmap: bool = False

    def __post_init__(self) -> None:
        if not 9 <= self.opset <= 15:
            raise ConfigError(f"opset={self.opset}", hint="onnxmltools converts up to opset 15; use 9..15")


def convert_classic(
    format: str, model_path: Path, out_dir: Path, config: ClassicExportConfig | None = None
) -> Path:
    """Convert a stored sklearn / xgboost / lightgbm model to ``out_dir/model.onnx``."""
    from thrifty.ingest.inspect_classic import describe, load_classic

    config = config or ClassicExportConfig()
    model = load_classic(format, model_path)
    about = describe(format, model)
    if not about["n_features"]:
        raise OptimizeError(
            f"{model_path}: the {format} model does not record its number of features",
            hint="fit it on a 2-D array (n_features_in_ is set then) and save it again",
        )
    try:
        onnx_model = _convert(format, model, int(about["n_features"]), config)
    except Exception as exc:  # the converters raise RuntimeError, "not implemented" errors or their own
        raise OptimizeError(
            f"{format} model {about['estimator']} could not be converted to ONNX: {str(exc).splitlines()[0]}",
            hint="skl2onnx / onnxmltools name the unsupported part above; register an ONNX export instead",
        ) from exc
    target = prepare_out(out_dir)
    tmp = tmp_path_for(target)
    tmp.write_bytes(onnx_model.SerializeToString())
    tmp.replace(target)
    save_config(target, "export", config, source=format, estimator=about["estimator"], task=about["task"])
    return target


def _convert(format: str, model: Any, n_features: int, config: ClassicExportConfig) -> Any:
    opsets = {"": config.opset, "ai.onnx.ml": config.ml_opset}
    if format == "sklearn":
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType as SklFloat

        options = {"zipmap": config.zipmap} if hasattr(model, "predict_proba") else None
        return to_onnx(
            model,
            initial_types=[("input", SklFloat([None, n_features]))],
            target_opset=opsets,
            options=options,
        )
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, n_features]))]
    if format == "xgboost":
        return onnxmltools.convert_xgboost(model, initial_types=types, target_opset=config.opset)
    return onnxmltools.convert_lightgbm(
        model, initial_types=types, target_opset=config.opset, zipmap=config.zipmap
    )

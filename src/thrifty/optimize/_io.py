"""Small helpers shared by the workers: output folders, the saved config, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from thrifty.optimize.config import config_to_json

CONFIG_FILE = "thrifty_config.json"
MODEL_FILE = "model.onnx"


def prepare_out(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / MODEL_FILE


def tmp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_config(model_path: Path, technique: str, config: Any, **extra: Any) -> dict[str, Any]:
    """Write the config used next to the model (``thrifty_config.json``); returns the dict."""
    data: dict[str, Any] = {"technique": technique, "config": config_to_json(config), **extra}
    target = model_path.parent / CONFIG_FILE
    tmp = tmp_path_for(target)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    tmp.replace(target)
    return data


def load_config(model_path: Path) -> dict[str, Any]:
    target = model_path.parent / CONFIG_FILE
    return dict(json.loads(target.read_text())) if target.exists() else {}

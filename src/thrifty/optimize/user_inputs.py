"""What a user supplies for pruning and distillation: the module's code and a data file.

- ``module``: ``path/to/file.py:factory`` — a function in the user's own file that returns the
  ``nn.Module`` (the registered state dict or safetensors weights are loaded into it). The file is
  run as Python: it is the user's code on the user's machine, named explicitly, never taken from a
  model file.
- ``data``: an ``.npz`` file with an ``inputs`` array (float) and optionally ``labels`` (integer
  classes); read with ``allow_pickle=False``.

Both are remembered in the model version's work folder (``user_inputs.json``), so a later
``thrifty bench`` judges the variants on the same data.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import ConfigError, OptimizeError

SAVED_FILE = "user_inputs.json"
MODULE_HINT = "pass --module path/to/model.py:make_model, a function that returns the nn.Module"
DATA_HINT = "pass --data data.npz holding an 'inputs' array (and 'labels' for a classifier): np.savez(...)"
MIN_SAMPLES = 10


@dataclass(frozen=True)
class UserInputs:
    module: str | None = None
    data: str | None = None

    def save(self, work_dir: Path) -> None:
        if self.module or self.data:
            work_dir.mkdir(parents=True, exist_ok=True)
            tmp = work_dir / f".{SAVED_FILE}.tmp"
            tmp.write_text(json.dumps(asdict(self)))
            tmp.replace(work_dir / SAVED_FILE)

    @classmethod
    def load(cls, work_dir: Path) -> UserInputs:
        saved = work_dir / SAVED_FILE
        return cls(**json.loads(saved.read_text())) if saved.is_file() else cls()

    def merged(self, saved: UserInputs) -> UserInputs:
        return UserInputs(self.module or saved.module, self.data or saved.data)


def load_factory(spec: str) -> Any:
    """The callable named by ``file.py:name``."""
    file, _, name = spec.rpartition(":")
    path = Path(file).expanduser()
    if not file or not name or path.suffix != ".py" or not path.is_file():
        raise ConfigError(f"--module {spec!r} is not an existing FILE.py:FUNCTION", hint=MODULE_HINT)
    loaded = importlib.util.spec_from_file_location(f"thrifty_user_{path.stem}", path)
    if loaded is None or loaded.loader is None:
        raise ConfigError(f"--module {spec!r}: {path} cannot be imported", hint=MODULE_HINT)
    module = importlib.util.module_from_spec(loaded)
    try:
        loaded.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"--module {spec!r}: importing {path} failed: {exc}", hint="fix that file") from exc
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ConfigError(f"--module {spec!r}: {path} has no function {name!r}", hint=MODULE_HINT)
    return factory


def build_module(spec: str, weights: dict[str, Any] | None) -> Any:
    """Call the factory; load ``weights`` (a state dict) into what it returns."""
    import torch

    factory = load_factory(spec)
    try:
        module = factory()
    except Exception as exc:
        raise ConfigError(f"--module {spec!r}: calling it failed: {exc}", hint=MODULE_HINT) from exc
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(
            f"--module {spec!r} returned {type(module).__name__}, not an nn.Module", hint=MODULE_HINT
        )
    if weights is not None:
        try:
            module.load_state_dict(weights)
        except RuntimeError as exc:
            raise OptimizeError(
                f"the registered weights do not fit the module from {spec!r}: {str(exc).splitlines()[0]}",
                hint="the factory must build the architecture the weights were saved from",
            ) from exc
    return module.eval()


def load_data(path_text: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs as float32, labels as int64 or None) from an .npz file."""
    path = Path(path_text).expanduser()
    if path.suffix != ".npz" or not path.is_file():
        raise ConfigError(f"--data {path_text!r} is not an existing .npz file", hint=DATA_HINT)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--data {path_text!r} could not be read: {exc}", hint=DATA_HINT) from exc
    if "inputs" not in arrays or len(arrays["inputs"]) < MIN_SAMPLES:
        raise ConfigError(
            f"--data {path_text!r} needs an 'inputs' array of ≥ {MIN_SAMPLES} samples (has {sorted(arrays)})",
            hint=DATA_HINT,
        )
    inputs, labels = arrays["inputs"].astype(np.float32), arrays.get("labels")
    if labels is not None and len(labels) != len(inputs):
        raise ConfigError(
            f"--data {path_text!r}: {len(inputs)} inputs but {len(labels)} labels", hint=DATA_HINT
        )
    return inputs, None if labels is None else labels.astype(np.int64)


def split(
    inputs: np.ndarray, labels: np.ndarray | None, held_out: float = 0.25
) -> tuple[tuple[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]:
    """(train, eval): a fixed shuffle, the last ``held_out`` share judged, never trained on."""
    order = np.random.default_rng(0).permutation(len(inputs))
    cut = max(1, int(len(inputs) * (1 - held_out)))
    train, test = order[:cut], order[cut:]

    def pick(index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return inputs[index], None if labels is None else labels[index]

    return pick(train), pick(test)

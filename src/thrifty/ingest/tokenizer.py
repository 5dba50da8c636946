"""A tokenizer attached at ingest (``thrifty ingest model.onnx --tokenizer DIR``).

The ONNX file and the tokenizer's files are stored together as one folder (``model.onnx`` beside
``tokenizer/``), so the version's sha256 covers both and every later step finds the tokenizer
where the model is: the eval set encodes real sentences with it, and serving answers text.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thrifty.errors import ConfigError, IngestError
from thrifty.ingest.safety import require_exists
from thrifty.ingest.types import ModelInfo

TOKENIZER_DIR = "tokenizer"
#: files a Hugging Face tokenizer folder may hold (weights and model configs are left behind)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
TOKENIZER_HINT = (
    "pass the folder a tokenizer was saved to (tokenizer.save_pretrained(DIR)): it needs tokenizer.json"
)


def tokenizer_files(tokenizer: Path) -> list[Path]:
    folder = tokenizer.parent if tokenizer.is_file() else tokenizer
    if not (folder / "tokenizer.json").is_file():
        raise IngestError(f"--tokenizer {tokenizer}: no tokenizer.json in {folder}", hint=TOKENIZER_HINT)
    return [folder / f for f in TOKENIZER_FILES if (folder / f).is_file() and not (folder / f).is_symlink()]


@contextmanager
def staged_with_tokenizer(model: Path, tokenizer: Path) -> Iterator[Path]:
    """A temporary folder holding the model (file or folder) and ``tokenizer/``."""
    files = tokenizer_files(require_exists(tokenizer))
    with tempfile.TemporaryDirectory(prefix="thrifty-tokenizer-") as tmp:
        staged = Path(tmp) / "model"
        if model.is_dir():
            if (model / "config.json").is_file():
                raise ConfigError(
                    f"--tokenizer with {model}: a Hugging Face folder carries its own tokenizer",
                    hint="drop --tokenizer, or save the tokenizer into the folder",
                )
            shutil.copytree(model, staged, symlinks=True)
        else:
            staged.mkdir()
            shutil.copy2(model, staged / (model.name if model.suffix == ".onnx" else "model.onnx"))
        (staged / TOKENIZER_DIR).mkdir(exist_ok=True)
        for file in files:
            shutil.copy2(file, staged / TOKENIZER_DIR / file.name)
        yield staged


def check_tokenizer_fits(info: ModelInfo, staged: Path, source: Path) -> None:
    """The model takes token ids, and the tokenizer's ids stay inside its embedding table."""
    if info.format != "onnx":
        raise ConfigError(
            f"--tokenizer with {source} ({info.format}): a tokenizer is attached to ONNX models only",
            hint="drop --tokenizer",
        )
    vocab = info.details.get("vocab_sizes") or {}
    names = [i["name"] for i in info.signature["inputs"]]
    if "input_ids" not in names:
        raise ConfigError(
            f"--tokenizer with {source}: the model has no input_ids input (inputs: {', '.join(names)})",
            hint="a tokenizer fits a text model exported with input_ids / attention_mask; drop --tokenizer",
        )
    size = _tokenizer_size(staged / TOKENIZER_DIR)
    if "input_ids" in vocab and size > vocab["input_ids"]:
        raise ConfigError(
            f"--tokenizer: it knows {size} tokens but the model's embedding has {vocab['input_ids']} rows",
            hint="this tokenizer belongs to another model; pass the one the model was trained with",
        )
    info.details["tokenizer"] = TOKENIZER_DIR
    info.details["tokenizer_vocab_size"] = size


def _tokenizer_size(folder: Path) -> int:
    from transformers import AutoTokenizer

    try:
        tokenizer: Any = AutoTokenizer.from_pretrained(str(folder))  # type: ignore[no-untyped-call]
    except Exception as exc:  # transformers raises OSError / ValueError / its own types
        raise IngestError(f"--tokenizer: {folder} could not be loaded ({exc})", hint=TOKENIZER_HINT) from exc
    return len(tokenizer)

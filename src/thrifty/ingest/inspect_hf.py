"""safetensors files and Hugging Face folders (config.json + *.safetensors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thrifty.errors import CorruptModelError, UnsafeModelError
from thrifty.ingest.inspect_torch import PICKLE_HINT
from thrifty.ingest.types import ModelInfo

SAFETENSORS_HEADER_MAX_BYTES = 100 * 1024 * 1024


def safetensors_parameter_count(path: Path) -> int:
    """Parameters in a safetensors file, from its header (the weights themselves are not read)."""
    from safetensors import safe_open

    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="np") as handle:
            total = 0
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                count = 1
                for dim in handle.get_slice(key).get_shape():
                    count *= int(dim)
                total += count
            return total
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise CorruptModelError(
            f"{path} is not a valid safetensors file: {exc}", hint="save it again"
        ) from exc


def _check_safetensors_header(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        header_len = int.from_bytes(head, "little") if len(head) == 8 else -1
        if header_len <= 0 or header_len > min(size - 8, SAFETENSORS_HEADER_MAX_BYTES):
            raise CorruptModelError(f"{path} has a damaged safetensors header", hint="save it again")
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptModelError(f"{path} has a damaged safetensors header", hint="save it again") from exc
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        raise CorruptModelError(
            f"{path} is truncated: its header promises {8 + header_len + end} bytes, the file has {size}",
            hint="copy or download the file again",
        )


def inspect_safetensors(path: Path) -> ModelInfo:
    return ModelInfo(format="safetensors", parameter_count=safetensors_parameter_count(path))


def inspect_hf_folder(folder: Path) -> ModelInfo:
    config = _read_json(folder / "config.json")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
        raise UnsafeModelError(
            f"{folder} has no *.safetensors weights"
            + (f" (only pickled {', '.join(pickled)})" if pickled else ""),
            hint="save the model with save_pretrained(..., safe_serialization=True); " + PICKLE_HINT,
        )
    params = sum(safetensors_parameter_count(p) for p in weights)
    details = _hf_details(folder, config)
    return ModelInfo(
        format="huggingface",
        parameter_count=params,
        task=details.pop("task"),
        signature=_hf_signature(folder, config, details),
        details=details,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(
            f"{path} is not valid JSON ({exc})", hint="fix or regenerate config.json"
        ) from exc
    if not isinstance(data, dict):
        raise CorruptModelError(f"{path} is not a JSON object", hint="fix or regenerate config.json")
    return data


def _hf_details(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    sentence_transformers = (folder / "modules.json").is_file()
    pooling = None
    pooling_cfg = folder / "1_Pooling" / "config.json"
    if pooling_cfg.is_file():
        cfg = _read_json(pooling_cfg)
        pooling = next(
            (
                k.removeprefix("pooling_mode_").removesuffix("_tokens")
                for k, v in cfg.items()
                if k.startswith("pooling_mode_") and v
            ),
            None,
        )
    architectures = list(config.get("architectures") or [])
    task = "sentence-embedding" if sentence_transformers else _task_from_architectures(architectures)
    return {
        "task": task,
        "architectures": architectures,
        "model_type": config.get("model_type"),
        "hidden_size": config.get("hidden_size"),
        "max_position_embeddings": config.get("max_position_embeddings"),
        "sentence_transformers": sentence_transformers,
        "pooling": pooling,
        "tokenizer": "tokenizer.json" if (folder / "tokenizer.json").is_file() else None,
    }


def _task_from_architectures(architectures: list[str]) -> str:
    name = architectures[0] if architectures else ""
    for suffix, task in (
        ("ForSequenceClassification", "text-classification"),
        ("ForTokenClassification", "token-classification"),
        ("ForQuestionAnswering", "question-answering"),
        ("ForImageClassification", "image-classification"),
        ("ForCausalLM", "text-generation"),
        ("ForMaskedLM", "fill-mask"),
    ):
        if name.endswith(suffix):
            return task
    return "feature-extraction"


def _hf_signature(folder: Path, config: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    if details["tokenizer"] is None:
        return {"inputs": [], "outputs": []}
    inputs = [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]},
    ]
    if config.get("type_vocab_size", 0):
        inputs.append({"name": "token_type_ids", "dtype": "int64", "shape": ["batch", "sequence"]})
    hidden = config.get("hidden_size", "?")
    if details["sentence_transformers"]:
        outputs = [{"name": "sentence_embedding", "dtype": "float32", "shape": ["batch", hidden]}]
    else:
        outputs = [{"name": "last_hidden_state", "dtype": "float32", "shape": ["batch", "sequence", hidden]}]
    return {"inputs": inputs, "outputs": outputs}

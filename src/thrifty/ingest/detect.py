"""Find out what a path holds — from its bytes and layout, not only its name — and inspect it."""

from __future__ import annotations

from pathlib import Path

from thrifty.errors import UnknownFormatError, UnsafeModelError
from thrifty.ingest.safety import check_no_escaping_links
from thrifty.ingest.types import ModelInfo, supported_list

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOLS = {bytes([0x80, p]) for p in range(2, 6)}


def inspect_path(path: Path) -> ModelInfo:
    """Validate the model at ``path`` and describe it; raises an ``IngestError`` subclass."""
    if path.is_dir():
        return _inspect_folder(path)
    if path.is_symlink():
        raise UnsafeModelError(
            f"{path} is a symlink (to {path.resolve()})", hint="pass the real file, not a link to it"
        )
    return _inspect_file(path)


def _inspect_folder(folder: Path) -> ModelInfo:
    from thrifty.ingest.inspect_hf import inspect_hf_folder
    from thrifty.ingest.inspect_onnx import inspect_onnx

    check_no_escaping_links(folder)
    if (folder / "config.json").is_file():
        return inspect_hf_folder(folder)
    onnx_files = sorted(folder.glob("*.onnx"))
    if len(onnx_files) == 1:
        info = inspect_onnx(onnx_files[0])
        info.details["entry"] = onnx_files[0].name
        return info
    raise UnknownFormatError(
        f"{folder} is neither a Hugging Face folder (no config.json) nor a folder with one .onnx file"
        + (f" (it has {len(onnx_files)})" if onnx_files else ""),
        hint=f"thrifty accepts {supported_list()}",
    )


def _inspect_file(path: Path) -> ModelInfo:
    from thrifty.ingest import inspect_classic, inspect_hf, inspect_onnx, inspect_torch

    with path.open("rb") as handle:
        head = handle.read(64)
    if inspect_classic.is_xgboost(path, head):
        return inspect_classic.inspect_classic("xgboost", path)
    if inspect_classic.is_lightgbm_text(head):
        return inspect_classic.inspect_classic("lightgbm", path)
    if head.startswith(ZIP_MAGIC):
        kind = inspect_torch.zip_kind(path)
        if kind == "skops":
            return inspect_classic.inspect_classic("sklearn", path)
        if kind == "torchscript":
            return inspect_torch.inspect_torchscript(path)
        if kind == "torch_export":
            return inspect_torch.inspect_torch_export(path)
        return inspect_torch.inspect_state_dict(path)
    if head[:2] in PICKLE_PROTOCOLS:
        return inspect_torch.inspect_state_dict(path)
    if len(head) >= 9 and head[8:9] == b"{":
        return inspect_hf.inspect_safetensors(path)
    if path.suffix.lower() == ".onnx" or _looks_like_onnx(head):
        return inspect_onnx.inspect_onnx(path)
    raise UnknownFormatError(
        f"{path} is not a model format thrifty knows (first bytes {head[:8]!r})",
        hint=f"thrifty accepts {supported_list()}",
    )


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint) → tag byte 0x08
    return head[:1] == b"\x08" and len(head) > 1 and 0 < head[1] < 32

"""Where a deployment's files come from: the ONNX graph, the tokenizer, the saved optimized graph.

Convention (documented in the issue's closing note):
* the variant's artifact (``DeploySpec.artifact_sha256``) is an ONNX file, or a packed folder
  (``pack_tree``) holding one ``*.onnx`` (``model.onnx`` preferred) — and then maybe ``tokenizer.json``;
* the tokenizer is, first found wins: ``DeploySpec.serving["tokenizer_path"]``; ``tokenizer.json``
  beside the ONNX file in the variant's folder; the model version's Hugging Face folder (format
  ``huggingface``) or the tokenizer stored with an ONNX version (``--tokenizer``), unpacked from the store;
* the optimized graph (onnxruntime's extended optimizations, saved once) lives in the cache as
  ``<cache>/serving/<sha256>.opt/model.onnx`` with its initializers in ``model.data`` beside it
  (memory-mapped at load: the fast wake); ``serving["optimized_graph"] = "ort"`` saves
  ``<sha256>.opt.ort`` (onnxruntime's flatbuffer format) instead, ``False`` turns it off.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.artifacts.base import put_path, unpack_tree
from thrifty.errors import NotFoundError, ServingError


@dataclass(frozen=True)
class ServedFiles:
    model_path: Path
    tokenizer_path: Path | None = None
    optimized_graph_path: Path | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "model_path": str(self.model_path),
            "tokenizer_path": str(self.tokenizer_path) if self.tokenizer_path else None,
            "optimized_graph_path": str(self.optimized_graph_path) if self.optimized_graph_path else None,
        }


@dataclass(frozen=True)
class ServedModel:
    """What serving needs to find a model's files; a provider's ``DeploySpec`` has the same fields."""

    name: str
    model_name: str
    artifact_sha256: str
    variant_id: int = 0
    serving: Mapping[str, Any] = field(default_factory=dict)


def served_model(
    ref: str, name: str | None, tokenizer: Path | None, registry: Any, store: Any
) -> ServedModel:
    """A variant (id or MODEL/VARIANT), or an ONNX file (or folder, stored first), to serve as ``name``."""
    serving = {"tokenizer_path": str(tokenizer.resolve())} if tokenizer else {}
    path = Path(ref)
    if ref.isdigit() or ("/" in ref and not path.exists()):
        from thrifty import read

        variant = read.resolve_variant(registry, ref)
        version = registry.get_model_version_by_id(variant.model_version_id)
        default = f"{version.model.name}-{variant.name}".replace("/", "-")
        return ServedModel(name or default, version.model.name, variant.artifact.sha256, variant.id, serving)
    blob = put_path(store, path)
    return ServedModel(name or path.stem, name or path.stem, blob.sha256, 0, serving)


def _is_onnx_file(path: Path) -> bool:
    return path.is_file() and not tarfile.is_tarfile(path)


def onnx_in(blob: Path, unpack_dir: Path) -> Path:
    """The ONNX file of a stored blob: the blob itself, or the one inside a packed folder."""
    if _is_onnx_file(blob):
        return blob
    folder = blob if blob.is_dir() else unpack_tree(blob, unpack_dir)
    preferred = folder / "model.onnx"
    if preferred.is_file():
        return preferred
    found = sorted(folder.rglob("*.onnx"))
    if not found:
        raise ServingError(
            f"no .onnx file in {blob}", hint="deploy an ONNX variant (run the optimize step first)"
        )
    return found[0]


def tokenizer_near(model_path: Path) -> Path | None:
    candidate = model_path.parent / "tokenizer.json"
    return candidate if candidate.is_file() else None


def resolve_files(spec: Any, registry: Any, store: Any, cache_dir: Path) -> ServedFiles:
    """Local paths for a ``ServedModel`` or a DeploySpec (fetched and unpacked from the store as needed)."""
    serving = dict(spec.serving or {})
    sha = spec.artifact_sha256
    try:
        blob = store.fetch(sha)
    except Exception as exc:
        raise NotFoundError(
            f"artifact {sha[:12]} of deployment {spec.name!r} is not in the store",
            hint="re-run the optimize step",
        ) from exc
    model_path = onnx_in(Path(blob), cache_dir / "serving" / sha)
    tokenizer = _tokenizer_for(spec, serving, model_path, registry, store, cache_dir)
    return ServedFiles(model_path, tokenizer, _optimized_graph(serving, model_path, cache_dir, sha))


def _optimized_graph(serving: dict[str, Any], model_path: Path, cache_dir: Path, sha: str) -> Path | None:
    choice = serving.get("optimized_graph", True)
    if choice not in (True, False, "onnx", "ort"):
        raise ServingError(
            f"serving.optimized_graph is {choice!r}",
            hint='use true or "onnx" (the default: memory-mapped initializers), "ort", or false',
        )
    if choice is False:
        return None
    from thrifty.serving.runner import save_optimized_graph

    name = f"{sha}.opt.ort" if choice == "ort" else f"{sha}.opt"
    return save_optimized_graph(model_path, cache_dir / "serving" / name)


def _tokenizer_for(
    spec: Any, serving: dict[str, Any], model_path: Path, registry: Any, store: Any, cache_dir: Path
) -> Path | None:
    if serving.get("tokenizer_path"):
        path = Path(serving["tokenizer_path"])
        if not path.exists():
            raise ServingError(
                f"tokenizer_path {path} does not exist",
                hint="point serving.tokenizer_path at tokenizer.json or its folder",
            )
        return path
    near = tokenizer_near(model_path)
    if near is not None or not spec.variant_id:
        return near
    return _version_tokenizer(spec.variant_id, registry, store, cache_dir)


def _version_tokenizer(variant_id: int, registry: Any, store: Any, cache_dir: Path) -> Path | None:
    variant = registry.get_variant(variant_id)
    version = registry.get_model_version_by_id(variant.model_version_id)
    if version.format != "huggingface" and not version.details.get("tokenizer"):
        return None  # an ONNX version carries one only when ingested with --tokenizer
    blob = Path(store.fetch(version.sha256))
    folder = blob if blob.is_dir() else unpack_tree(blob, cache_dir / "serving" / version.sha256)
    found = sorted(folder.rglob("tokenizer.json"))
    return found[0] if found else None

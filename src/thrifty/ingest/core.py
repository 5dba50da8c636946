"""``ingest_model``: validate, store (content-addressed) and register a model, atomically.

Everything is validated before a byte is stored, so bad input leaves the store and the registry
unchanged. The same bytes under the same name are the same version.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from thrifty.artifacts import ArtifactStore, StoredBlob
from thrifty.artifacts.base import pack_tree, unpack_tree
from thrifty.errors import ConfigError
from thrifty.ingest.detect import inspect_path
from thrifty.ingest.safety import check_size, require_exists
from thrifty.ingest.types import ModelInfo
from thrifty.registry import ModelVersion, Registry

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class IngestResult:
    version: ModelVersion
    created: bool
    info: ModelInfo


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"model name {name!r} is not allowed",
            hint="use 1–100 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def default_name(path: Path) -> str:
    stem = path.name if path.is_dir() else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "model"


def ingest_model(
    path: Path,
    name: str | None = None,
    *,
    registry: Registry,
    store: ArtifactStore,
    max_bytes: int | None = None,
    tokenizer: Path | None = None,
) -> IngestResult:
    """Validate the model at ``path``, store its bytes and register a version of ``name``.

    ``tokenizer`` (a folder with ``tokenizer.json``) is stored with an ONNX model whose inputs are
    token ids, so its variants can be judged on real sentences and served to text requests.
    """
    from thrifty.settings import get_settings

    path = require_exists(Path(path).expanduser())
    name = check_name(name or default_name(path.resolve()))
    limit = max_bytes if max_bytes is not None else get_settings().max_model_bytes
    if tokenizer is None:
        return _ingest(path, path, name, registry, store, limit)
    from thrifty.ingest.tokenizer import staged_with_tokenizer

    with staged_with_tokenizer(path, Path(tokenizer).expanduser()) as staged:
        return _ingest(staged, path, name, registry, store, limit)


def _ingest(
    path: Path, source: Path, name: str, registry: Registry, store: ArtifactStore, limit: int
) -> IngestResult:
    size = check_size(path, limit)
    info = inspect_path(path)
    if path != source:
        from thrifty.ingest.tokenizer import check_tokenizer_fits

        check_tokenizer_fits(info, path, source)
    blob = _store(path, store)
    artifact = registry.upsert_artifact(blob.sha256, blob.size_bytes, blob.uri, kind=_layout(path))
    version, created = registry.add_model_version(
        name,
        sha256=blob.sha256,
        artifact=artifact,
        format=info.format,
        task=info.task,
        size_bytes=size,
        parameter_count=info.parameter_count,
        opset=info.opset,
        signature=info.signature,
        details={**info.details, "layout": _layout(path), "filename": source.name},
        source_path=str(source.resolve()),
    )
    return IngestResult(version=version, created=created, info=info)


def _layout(path: Path) -> str:
    return "tree" if path.is_dir() else "file"


def _store(path: Path, store: ArtifactStore) -> StoredBlob:
    if path.is_file():
        return store.put_file(path)
    with tempfile.TemporaryDirectory(prefix="thrifty-pack-") as tmp:
        packed = Path(tmp) / "model.tar"
        pack_tree(path, packed)
        return store.put_file(packed)


def materialize(version: ModelVersion, store: ArtifactStore, cache_dir: Path) -> Path:
    """A local path with the model version's content: the file, or the unpacked folder."""
    blob = store.fetch(version.sha256)
    if version.details.get("layout") != "tree":
        return blob
    folder = unpack_tree(blob, cache_dir / "trees" / version.sha256)
    entry = version.details.get("entry")
    return folder / entry if entry else folder

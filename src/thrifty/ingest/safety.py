"""Checks that run before anything is parsed: existence, size limits, symlinks and traversal."""

from __future__ import annotations

from pathlib import Path

from thrifty.errors import IngestError, ModelTooLargeError, UnsafeModelError


def require_exists(path: Path) -> Path:
    if not path.exists() and not path.is_symlink():
        raise IngestError(f"{path} does not exist", hint="pass the path of a model file or folder")
    return path


def tree_size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def check_size(path: Path, max_bytes: int) -> int:
    size = tree_size_bytes(path)
    if size > max_bytes:
        raise ModelTooLargeError(
            f"{path} is {size / 1024**2:.1f} MiB, above the limit of {max_bytes / 1024**2:.1f} MiB",
            hint="raise THRIFTY_MAX_MODEL_BYTES if this model is expected to be this large",
        )
    return size


def inside(folder: Path, candidate: Path) -> bool:
    """Whether ``candidate`` (after resolving ``..`` and symlinks) lies within ``folder``."""
    return candidate.resolve().is_relative_to(folder.resolve())


def check_no_escaping_links(folder: Path) -> None:
    """Refuse a folder with a symlink that points outside it (it could smuggle in any file)."""
    for path in folder.rglob("*"):
        if path.is_symlink() and not inside(folder, path):
            raise UnsafeModelError(
                f"{path} is a symlink to {path.resolve()}, outside the model folder {folder}",
                hint="copy the real file into the model folder instead of linking to it",
            )


def check_relative_reference(folder: Path, reference: str, what: str) -> Path:
    """Resolve a file name a model refers to; it must stay inside ``folder`` and exist."""
    ref = Path(reference)
    target = folder / ref
    if ref.is_absolute() or ".." in ref.parts or not inside(folder, target):
        raise UnsafeModelError(
            f"{what} refers to {reference!r}, which lies outside the model folder {folder}",
            hint="external data files must sit inside the model's folder, named relative to it",
        )
    if not target.is_file():
        raise IngestError(
            f"{what} refers to {reference!r}, which is missing from {folder}",
            hint="copy the external data file next to the .onnx file",
        )
    return target

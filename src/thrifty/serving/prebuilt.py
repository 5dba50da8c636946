"""onnxruntime's graph optimization done once at deploy time, shipped as a blob beside the variant.

A cold-starting runtime otherwise rewrites the graph at every start (MiniLM int8: about a third of
its session's load time; fp32: two thirds, measured in the runtime image, bench/serverless.py). The
deploy step saves the optimized graph once (``runner.save_optimized_graph``: extended
optimizations, which are not tied to one CPU's instruction set, with the initializers beside it for
memory-mapping) and stores it packed, content-addressed like every blob::

    model.onnx       the optimized graph
    model.data       its initializers
    tokenizer.json   when the variant has one beside its ONNX file
    optimized.json   {"source_sha256": the variant's blob, "onnxruntime": the version that saved it}

The runtime fetches it by sha256 (``THRIFTY_OPTIMIZED_SHA256``) and loads it with optimizations
off — but only when it was made from the variant it serves by the same onnxruntime: otherwise it
logs why and falls back to the variant itself (slower, never wrong).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from thrifty.serving.resolve import onnx_in, tokenizer_near
from thrifty.serving.runner import GRAPH_NAME, save_optimized_graph

log = logging.getLogger("thrifty.serving.prebuilt")
MANIFEST_NAME = "optimized.json"


def ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def build_optimized(model_path: Path, source_sha256: str, out: Path) -> Path:
    """The folder ``out`` holding the saved optimized graph of ``model_path`` and its manifest."""
    saved = save_optimized_graph(model_path, out / "graph")
    if saved is None:
        from thrifty.errors import ServingError

        raise ServingError(
            f"onnxruntime could not save an optimized graph of {model_path.name}",
            hint="deploy without it (the runtime then optimizes at start): omit serving.optimized_sha256",
        )
    folder = saved.parent
    tokenizer = tokenizer_near(model_path)
    if tokenizer is not None:
        shutil.copyfile(tokenizer, folder / "tokenizer.json")
    manifest = {"source_sha256": source_sha256, "onnxruntime": ort_version()}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, sort_keys=True) + "\n")
    return folder


def store_optimized(store: Any, source_sha256: str) -> str:
    """Save the variant ``source_sha256``'s optimized graph into ``store``; the new blob's sha256."""
    from thrifty.artifacts.base import put_path

    with tempfile.TemporaryDirectory(prefix="thrifty-opt-") as tmp:
        model_path = onnx_in(Path(store.fetch(source_sha256)), Path(tmp) / "variant")
        folder = build_optimized(model_path, source_sha256, Path(tmp) / "out")
        return str(put_path(store, folder).sha256)


def usable_graph(folder: Path, source_sha256: str) -> Path | None:
    """The optimized graph in an unpacked blob when it fits this variant and this onnxruntime."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        log.warning("optimized graph blob has no readable %s: optimizing at start instead", MANIFEST_NAME)
        return None
    if manifest.get("source_sha256") != source_sha256:
        log.warning("optimized graph was made from another variant: optimizing at start instead")
        return None
    if manifest.get("onnxruntime") != ort_version():
        log.warning(
            "optimized graph was saved by onnxruntime %s, this runtime has %s: optimizing at start instead",
            manifest.get("onnxruntime"), ort_version(),
        )  # fmt: skip
        return None
    graph = folder / GRAPH_NAME
    return graph if graph.is_file() else None

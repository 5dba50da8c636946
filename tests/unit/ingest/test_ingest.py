"""Ingest of every accepted format, and every kind of bad input leaving nothing behind."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from thrifty import runtime
from thrifty.errors import (
    ConfigError,
    CorruptModelError,
    IngestError,
    ModelTooLargeError,
    UnknownFormatError,
    UnsafeModelError,
)
from thrifty.ingest import ingest_model, materialize


def _ingest(path: Path, name: str | None = "m", **kwargs: object) -> object:
    return ingest_model(path, name, registry=runtime.registry(), store=runtime.store(), **kwargs)  # type: ignore[arg-type]


def _nothing_stored(home: Path) -> None:
    assert runtime.registry().list_models() == []
    assert runtime.registry().list_artifacts() == []
    blobs = (
        [p for p in (home / "artifacts").rglob("*") if p.is_file()] if (home / "artifacts").exists() else []
    )
    assert blobs == []


def test_onnx_records_signature_opset_and_parameters(thrifty_home: Path, onnx_file: Path) -> None:
    result = ingest_model(onnx_file, "mlp", registry=runtime.registry(), store=runtime.store())
    v = result.version
    assert (v.format, v.version, v.opset, v.parameter_count) == ("onnx", 1, 17, 16 * 64 + 64 * 16 + 16)
    assert v.signature == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 16]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 16]}],
    }
    assert materialize(v, runtime.store(), thrifty_home / "cache").read_bytes() == onnx_file.read_bytes()


def test_onnx_folder_with_external_data(
    thrifty_home: Path, tmp_path: Path, onnx_factory: Callable[..., Path]
) -> None:
    model = onnx_factory(tmp_path / "ext" / "model.onnx", external=True)
    result = ingest_model(model.parent, "ext", registry=runtime.registry(), store=runtime.store())
    assert result.version.format == "onnx" and result.version.details["layout"] == "tree"
    restored = materialize(result.version, runtime.store(), thrifty_home / "cache")
    assert restored.name == "model.onnx" and (restored.parent / "weights.bin").is_file()


@pytest.mark.parametrize(
    ("kind", "params"),
    [("torchscript", 46), ("torch_export", 46), ("state_dict", 46), ("safetensors", 46)],
)
def test_pytorch_formats(thrifty_home: Path, torch_files: dict[str, Path], kind: str, params: int) -> None:
    result = _ingest(torch_files[kind], kind)
    assert result.version.format == kind  # type: ignore[attr-defined]
    assert result.version.parameter_count == params  # type: ignore[attr-defined]


def test_torch_export_signature_has_shapes(thrifty_home: Path, torch_files: dict[str, Path]) -> None:
    sig = _ingest(torch_files["torch_export"]).version.signature  # type: ignore[attr-defined]
    assert sig["inputs"][0]["dtype"] == "float32" and sig["inputs"][0]["shape"] == [3, 8]


def test_huggingface_minilm(thrifty_home: Path, minilm_dir: Path) -> None:
    v = _ingest(minilm_dir, "minilm").version  # type: ignore[attr-defined]
    assert v.format == "huggingface" and v.task == "sentence-embedding"
    assert 22_000_000 < v.parameter_count < 23_000_000
    assert v.details["pooling"] == "mean" and v.details["tokenizer"] == "tokenizer.json"
    assert [t["name"] for t in v.signature["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert v.signature["outputs"] == [
        {"name": "sentence_embedding", "dtype": "float32", "shape": ["batch", 384]}
    ]


def test_same_bytes_keep_one_version_new_bytes_make_v2(
    thrifty_home: Path, tmp_path: Path, onnx_factory: Callable[..., Path]
) -> None:
    first = _ingest(onnx_factory(tmp_path / "a" / "m.onnx"))
    again = _ingest(onnx_factory(tmp_path / "b" / "copy.onnx"))
    assert first.created and not again.created  # type: ignore[attr-defined]
    changed = tmp_path / "c" / "m.onnx"
    onnx_factory(changed)
    changed.write_bytes(changed.read_bytes().replace(b"mlp", b"mlq"))
    second = _ingest(changed)
    assert second.version.version == 2  # type: ignore[attr-defined]
    assert len(runtime.registry().list_artifacts()) == 2


# -- bad input: a clear error naming the file and the fix; nothing changes ---------------------


def test_truncated_onnx(thrifty_home: Path, onnx_file: Path) -> None:
    onnx_file.write_bytes(onnx_file.read_bytes()[:300])
    with pytest.raises(CorruptModelError) as err:
        _ingest(onnx_file)
    assert str(onnx_file) in str(err.value) and "export it again" in str(err.value)
    _nothing_stored(thrifty_home)


def test_truncated_torchscript(thrifty_home: Path, torch_files: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.ts"
    broken.write_bytes(torch_files["torchscript"].read_bytes()[:-200])
    with pytest.raises(CorruptModelError, match=r"broken\.ts"):
        _ingest(broken)
    _nothing_stored(thrifty_home)


def test_truncated_safetensors(thrifty_home: Path, torch_files: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(torch_files["safetensors"].read_bytes()[:-20])
    with pytest.raises(CorruptModelError, match="truncated"):
        _ingest(broken)
    _nothing_stored(thrifty_home)


def test_unknown_format(thrifty_home: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just some text, not a model")
    with pytest.raises(UnknownFormatError) as err:
        _ingest(text)
    assert "notes.txt" in str(err.value) and "Hugging Face folder" in str(err.value)
    _nothing_stored(thrifty_home)


def test_unrestricted_pickle_is_refused(thrifty_home: Path, torch_files: dict[str, Path]) -> None:
    with pytest.raises(UnsafeModelError) as err:
        _ingest(torch_files["pickle"])
    assert "could run any code" in str(err.value) and "state_dict" in str(err.value)
    _nothing_stored(thrifty_home)


def test_plain_pickle_of_an_object_is_refused(thrifty_home: Path, tmp_path: Path) -> None:
    import pickle

    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps({"weights": object()}, protocol=4))
    with pytest.raises(UnsafeModelError, match=r"model\.pkl"):
        _ingest(evil)
    _nothing_stored(thrifty_home)


def test_external_data_traversal_is_refused(
    thrifty_home: Path, tmp_path: Path, onnx_factory: Callable[..., Path]
) -> None:
    import onnx

    model_path = onnx_factory(tmp_path / "pkg" / "model.onnx", external=True)
    secret = tmp_path / "secret.bin"
    shutil.move(model_path.parent / "weights.bin", secret)
    model = onnx.load_model(str(model_path), load_external_data=False)
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    onnx.save_model(model, str(model_path))
    with pytest.raises(UnsafeModelError) as err:
        _ingest(model_path.parent)
    assert "../secret.bin" in str(err.value) and "inside the model" in str(err.value)
    _nothing_stored(thrifty_home)


def test_symlink_out_of_the_folder_is_refused(thrifty_home: Path, minilm_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(minilm_dir / name, folder / name)
    (tmp_path / "elsewhere.safetensors").write_bytes(b"x")
    (folder / "model.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(UnsafeModelError, match="outside the model folder"):
        _ingest(folder)
    _nothing_stored(thrifty_home)


def test_hf_folder_with_only_pickled_weights_is_refused(
    thrifty_home: Path, minilm_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "hf-bin"
    folder.mkdir()
    shutil.copy(minilm_dir / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeModelError, match=r"pytorch_model\.bin"):
        _ingest(folder)
    _nothing_stored(thrifty_home)


def test_file_above_the_size_limit(thrifty_home: Path, onnx_file: Path) -> None:
    with pytest.raises(ModelTooLargeError) as err:
        _ingest(onnx_file, max_bytes=1024)
    assert "THRIFTY_MAX_MODEL_BYTES" in str(err.value)
    _nothing_stored(thrifty_home)


def test_missing_path_and_bad_name(thrifty_home: Path, onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        _ingest(tmp_path / "nope.onnx")
    with pytest.raises(ConfigError, match="not allowed"):
        _ingest(onnx_file, name="../etc")
    _nothing_stored(thrifty_home)

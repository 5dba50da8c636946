"""Silence specific, known-harmless messages of the optimization libraries — only while they run.

Each entry names the logger that emits a message and the start of the message; nothing else is
filtered, and the filters are removed when the call returns. What is known harmless, and why:

- onnxruntime's quantizer logs "Please consider (to run) pre-processing before quantization" on the
  root logger for every call (twice for static): the pre-processing it advertises is the symbolic
  shape inference + graph optimization that our ``graph`` variant has already done.
- torch.onnx's exporter logs "torchvision is not installed. Skipping torchvision::nms" (and three
  more ops): a text model needs none of torchvision's detection ops.
- onnxruntime's transformer optimizer prints "failed in shape inference" on stdout and logs
  "symbolic shape inference disabled or failed." when symbolic shape inference cannot run on the
  exported graph; the fusions that need it are skipped, the rest apply (the tests count them).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator, Mapping

QUANTIZE = {
    "root": ("Please consider to run pre-processing", "Please consider pre-processing"),
}
EXPORT = {
    "torch.onnx._internal.exporter._registration": ("torchvision is not installed",),
}
GRAPH = {
    # onnxruntime.transformers imports its modules both as a package and top-level
    "fusion_skiplayernorm": ("symbolic shape inference disabled or failed",),
    "onnxruntime.transformers.fusion_skiplayernorm": ("symbolic shape inference disabled or failed",),
}
GRAPH_STDOUT = ("failed in shape inference",)


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


@contextlib.contextmanager
def known_harmless(messages: Mapping[str, tuple[str, ...]], stdout: tuple[str, ...] = ()) -> Iterator[None]:
    """For the ``with`` body (or the decorated call): drop the named loggers' records that start
    with the given prefixes, and printed lines that start with ``stdout``; the rest passes."""
    installed = []
    for name, prefixes in messages.items():
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        flt = _DropPrefixes(prefixes)
        logger.addFilter(flt)
        installed.append((logger, flt))
    try:
        with _stdout_lines_dropped(stdout) if stdout else contextlib.nullcontext():
            yield
    finally:
        for logger, flt in installed:
            logger.removeFilter(flt)


class _LineFilter(io.TextIOBase):
    """A stdout stand-in that drops whole lines starting with ``prefixes`` and passes the rest on."""

    def __init__(self, target: io.TextIOBase, prefixes: tuple[str, ...]) -> None:
        self._target, self._prefixes, self._pending = target, prefixes, ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if not line.startswith(self._prefixes):
                self._target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending and not self._pending.startswith(self._prefixes):
            self._target.write(self._pending)
        self._pending = ""
        self._target.flush()


@contextlib.contextmanager
def _stdout_lines_dropped(prefixes: tuple[str, ...]) -> Iterator[None]:
    line_filter = _LineFilter(sys.stdout, prefixes)  # type: ignore[arg-type]
    with contextlib.redirect_stdout(line_filter):  # type: ignore[type-var]
        try:
            yield
        finally:
            line_filter.flush()

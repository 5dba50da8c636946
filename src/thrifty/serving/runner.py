"""One ONNX model in an onnxruntime session, with server-side tokenization and dynamic batching.

Batching without a timer: requests that arrive while a batch runs wait in ``pending``; when the
session is free, everything pending (up to ``max_batch_size`` rows) runs as one call. At
concurrency 1 nothing waits, so batching adds no latency; under load the batch grows by itself.
``max_queue_delay_ms`` > 0 additionally holds a short batch open for stragglers.

Small models (a run under ``INLINE_RUN_MS``) run on the event-loop thread: handing them to a worker
thread costs more than the run itself. Larger models run on one worker thread, so the loop keeps
parsing requests (onnxruntime releases the GIL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import InvalidRequestError, ServingError
from thrifty.serving.oip import ORT_TYPES, TensorSpec

INLINE_RUN_MS = 0.5
TEXT_INPUT = "text"
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class RunnerConfig:
    max_batch_size: int = 32
    max_queue_delay_ms: float = 0.0
    intra_op_threads: int = 0
    max_seq_len: int = 128
    #: text batches stop at this many tokens: on CPU, MiniLM ran no faster per item past ~4 × 128
    #: tokens (measured, bench/serving.py), and a bigger batch only makes every request in it wait
    max_batch_tokens: int = 512
    optimized_graph_path: Path | None = None
    #: let idle onnxruntime threads spin-wait (its default); off here because a server shares its
    #: cores with HTTP parsing, and on a busy machine spinning halved MiniLM's throughput (measured)
    spin: bool = False
    #: run one tiny input at load so first-run allocations do not land on a request; a cold-starting
    #: serverless runtime turns it off: its first request waits for the load anyway, so the warm-up
    #: would only run the model twice before the first answer (the inline shortcut is then off)
    warm_up: bool = True


@dataclass(slots=True)
class _Pending:
    feeds: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]
    queued_at: float


def create_session(model_path: Path, config: RunnerConfig) -> Any:
    """An onnxruntime session; loads the saved optimized graph instead when there is one."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if config.intra_op_threads:
        options.intra_op_num_threads = config.intra_op_threads
    if not config.spin:  # idle onnxruntime threads would otherwise spin on the cores HTTP needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model_path
    if config.optimized_graph_path is not None and config.optimized_graph_path.is_file():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if config.optimized_graph_path.suffix == ".ort":
            options.add_session_config_entry("session.load_model_format", "ORT")
        source = config.optimized_graph_path
    read_ahead(source)
    try:
        return ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ServingError(
            f"onnxruntime cannot load {source}: {exc}", hint="check that the file is a valid ONNX model"
        ) from exc


def read_ahead(graph: Path) -> None:
    """Ask the kernel to start reading the graph's files now (``POSIX_FADV_WILLNEED``).

    A no-op when the pages are cached; after a long hibernation they may not be, and the kernel's
    large sequential reads then run while onnxruntime parses the graph instead of page by page as
    the memory-mapped initializers are first touched.
    """
    for path in (graph, graph.with_name(EXTERNAL_DATA_NAME)):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            with contextlib.suppress(OSError):  # a file system without fadvise: reading on demand works
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


#: the initializers of a saved optimized graph, beside its ``model.onnx`` (onnxruntime memory-maps
#: them at load: page-aligned offsets for every tensor of 1 MiB or more)
EXTERNAL_DATA_NAME = "model.data"
GRAPH_NAME = "model.onnx"


def save_optimized_graph(model_path: Path, out: Path) -> Path | None:
    """Save onnxruntime's optimized graph of ``model_path`` once (atomically); the path to load.

    Loading it later with optimizations off skips the graph rewrites. ``out`` is a folder that gets
    ``model.onnx`` (the graph, small) and ``model.data`` (the initializers, which onnxruntime then
    memory-maps instead of parsing and copying them: MiniLM fp32's session came up in a third of
    the time, bench/serving.py). An ``out`` ending in ``.ort`` saves onnxruntime's flatbuffer
    format instead (for minimal builds; it loaded slower than either ONNX form here).
    None when onnxruntime cannot save or reload it.
    """
    if out.suffix == ".ort":
        return _save_ort_format(model_path, out)
    graph = out / GRAPH_NAME
    if graph.is_file():
        return graph
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # as any other cache folder (mkdtemp makes it private)
    try:
        _optimize_to(model_path, tmp / GRAPH_NAME, external_data=True)
        create_session(model_path, RunnerConfig(optimized_graph_path=tmp / GRAPH_NAME))  # it must load back
        tmp.rename(out)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        return graph if graph.is_file() else None  # another process may have saved it first
    return graph


def _save_ort_format(model_path: Path, out: Path) -> Path | None:
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{os.getpid()}.tmp.{out.name}")
    try:
        _optimize_to(model_path, tmp, external_data=False)
        create_session(model_path, RunnerConfig(optimized_graph_path=tmp))  # it must load back
    except Exception:
        tmp.unlink(missing_ok=True)
        return None
    tmp.replace(out)
    return out


def _optimize_to(model_path: Path, out: Path, *, external_data: bool) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out)
    if out.suffix == ".ort":
        options.add_session_config_entry("session.save_model_format", "ORT")
    elif external_data:
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", EXTERNAL_DATA_NAME
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
    ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, ORT_TYPES.get(arg.type, "BYTES"), shape)


class ModelRunner:
    """Serves one model: the signature it exposes, and ``submit`` → future of output arrays."""

    def __init__(
        self,
        name: str,
        model_path: Path,
        *,
        version: str = "1",
        tokenizer_path: Path | None = None,
        config: RunnerConfig | None = None,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.name, self.version, self.model_path = name, version, model_path
        self.config = config or RunnerConfig()
        started = time.perf_counter()
        with ThreadPoolExecutor(1) as side:  # the tokenizer parses its JSON while onnxruntime loads
            tokenizer: Future[tuple[Any, float]] | None = (
                side.submit(_timed, _load_tokenizer, tokenizer_path, self.config.max_seq_len)
                if tokenizer_path
                else None
            )
            self.session = create_session(model_path, self.config)
            self.create_ms = (time.perf_counter() - started) * 1000
            parsed = tokenizer.result() if tokenizer is not None else (None, 0.0)
        self.tokenizer: Any = parsed[0]
        self.tokenizer_ms: float = parsed[1]
        self.session_ms = (time.perf_counter() - started) * 1000
        self.model_inputs = [_spec(a) for a in self.session.get_inputs()]
        self.outputs = [_spec(a) for a in self.session.get_outputs()]
        self.inputs = self._served_inputs()
        self.input_specs = {s.name: s for s in self.inputs}
        self.batchable = all(s.shape[:1] == (-1,) for s in self.model_inputs + self.outputs)
        self.max_rows = self.config.max_batch_size
        if self.tokenizer is not None:
            self.max_rows = min(
                self.max_rows, max(1, self.config.max_batch_tokens // self.config.max_seq_len)
            )
        self.load_ms = (time.perf_counter() - started) * 1000
        self._on_batch = on_batch
        self._pending: deque[_Pending] = deque()
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ort-{name}")
        self.warmup_ms = self._warm_up() if self.config.warm_up else 0.0
        self.inline = self.config.warm_up and self.warmup_ms < INLINE_RUN_MS

    def _served_inputs(self) -> list[TensorSpec]:
        if self.tokenizer is None:
            return self.model_inputs
        names = {s.name for s in self.model_inputs}
        if not names <= set(_TOKEN_INPUTS):
            raise ServingError(
                f"model {self.name!r} has inputs {sorted(names)}; a tokenizer fits only {list(_TOKEN_INPUTS)}",
                hint="drop the tokenizer or serve a text model exported with input_ids/attention_mask",
            )
        return [TensorSpec(TEXT_INPUT, "BYTES", (-1,))]

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [s.metadata() for s in self.inputs],
            "outputs": [s.metadata() for s in self.outputs],
        }

    def example_feeds(self) -> dict[str, np.ndarray]:
        """One row of zeros (or one short text) that fits the served signature."""
        if self.tokenizer is not None:
            return {TEXT_INPUT: np.array([b"hello world"], dtype=object)}
        from thrifty.serving.oip import DTYPES

        feeds = {}
        for spec in self.model_inputs:
            shape = tuple(1 if d < 0 else d for d in spec.shape)
            feeds[spec.name] = np.zeros(shape, dtype=DTYPES[spec.datatype])
        return feeds

    def _warm_up(self) -> float:
        """One run of a tiny input (first-run allocations happen here, not in a request); its ms."""
        feeds = self.example_feeds()
        started = time.perf_counter()
        self._run([_Pending(feeds, 1, None, 0.0)])  # type: ignore[arg-type]
        return (time.perf_counter() - started) * 1000

    def rows_of(self, feeds: dict[str, np.ndarray]) -> int:
        first = next(iter(feeds.values()))
        return int(first.shape[0]) if first.ndim else 1

    def submit(self, feeds: dict[str, np.ndarray]) -> asyncio.Future[dict[str, np.ndarray]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, np.ndarray]] = loop.create_future()
        rows = self.rows_of(feeds)
        if len({a.shape[0] if a.ndim else 1 for a in feeds.values()}) > 1:
            raise InvalidRequestError("inputs disagree on the batch size (their first dimension)")
        self._pending.append(_Pending(feeds, rows, future, time.perf_counter()))
        if not self._draining:
            self._draining = True
            self._drain_task = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        delay_s = self.config.max_queue_delay_ms / 1000
        try:
            while self._pending:
                if delay_s and sum(p.rows for p in self._pending) < self.max_rows:
                    await asyncio.sleep(delay_s)
                batch = self._take()
                if self.inline:
                    self._deliver(batch, self._run_safely(batch))
                    await asyncio.sleep(0)
                else:
                    self._deliver(batch, await loop.run_in_executor(self._executor, self._run_safely, batch))
        finally:
            self._draining = False

    def _take(self) -> list[_Pending]:
        batch = [self._pending.popleft()]
        if not self.batchable:
            return batch
        rows = batch[0].rows
        while self._pending and rows + self._pending[0].rows <= self.max_rows:
            item = self._pending.popleft()
            rows += item.rows
            batch.append(item)
        return batch

    def _run_safely(self, batch: list[_Pending]) -> list[dict[str, np.ndarray]] | BaseException:
        try:
            return self._run(batch)
        except Exception as exc:
            return exc

    def _deliver(self, batch: list[_Pending], results: list[dict[str, np.ndarray]] | BaseException) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - batch[0].queued_at)
        for index, item in enumerate(batch):
            if item.future.done():
                continue
            if isinstance(results, BaseException):
                item.future.set_exception(_translate(results, self.name))
            else:
                item.future.set_result(results[index])

    def _run(self, batch: list[_Pending]) -> list[dict[str, np.ndarray]]:
        feeds, lengths = self._model_feeds(batch)
        names = [s.name for s in self.outputs]
        values = self.session.run(names, feeds)
        if len(batch) == 1:
            return [dict(zip(names, values, strict=True))]
        return self._split(batch, names, values, lengths)

    def _model_feeds(self, batch: list[_Pending]) -> tuple[dict[str, np.ndarray], list[int] | None]:
        if self.tokenizer is not None:
            texts = [
                t.decode() if isinstance(t, bytes) else str(t) for p in batch for t in p.feeds[TEXT_INPUT]
            ]
            return self._tokenize(texts)
        if len(batch) == 1:
            return batch[0].feeds, None
        return {s.name: np.concatenate([p.feeds[s.name] for p in batch]) for s in self.model_inputs}, None

    def _tokenize(self, texts: list[str]) -> tuple[dict[str, np.ndarray], list[int]]:
        assert self.tokenizer is not None
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [sum(e.attention_mask) for e in encodings]
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        wanted = {s.name for s in self.model_inputs}
        return {k: np.array(v, dtype=np.int64) for k, v in columns.items() if k in wanted}, lengths

    def _split(
        self, batch: list[_Pending], names: list[str], values: list[Any], lengths: list[int] | None
    ) -> list[dict[str, np.ndarray]]:
        results: list[dict[str, np.ndarray]] = []
        start = 0
        for item in batch:
            stop = start + item.rows
            own = max(lengths[start:stop]) if lengths else None
            out = {}
            for name, value in zip(names, values, strict=True):
                part = value[start:stop]
                if own is not None and part.ndim >= 3:
                    part = part[:, :own]  # token-level outputs: drop the padding other requests needed
                out[name] = part
            results.append(out)
            start = stop
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _translate(exc: BaseException, name: str) -> BaseException:
    if isinstance(exc, InvalidRequestError | ServingError):
        return exc
    return ServingError(f"model {name!r} failed to run: {exc}")


def _timed(load: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """(what ``load(*args)`` returns, the milliseconds it took)."""
    started = time.perf_counter()
    return load(*args), (time.perf_counter() - started) * 1000


def _load_tokenizer(path: Path, max_seq_len: int) -> Any:
    from tokenizers import Tokenizer

    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ServingError(
            f"no tokenizer at {file}", hint="pass the folder that holds tokenizer.json (or the file itself)"
        )
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.enable_truncation(max_length=max_seq_len)
    tokenizer.enable_padding()
    return tokenizer

"""A model upload, streamed: multipart parts go to a staging file as they arrive, hashed (sha256) and
counted, and the request is cut off at the size limit — the body is never held in memory.

Then the model goes through the same validation as ``thrifty ingest`` (``ingest_model``), which
stores nothing until it passed; the staging folder is removed whatever happens.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from python_multipart.multipart import MultipartParser, parse_options_header

from thrifty.errors import (
    ConfigError,
    CorruptModelError,
    ModelTooLargeError,
    ThriftyError,
    UnsafeModelError,
)

if TYPE_CHECKING:
    from thrifty.ingest.core import IngestResult
    from thrifty.registry import Registry
    from thrifty.settings import Settings

#: form fields other than the file stay small
MAX_FIELD_BYTES = 10_000
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")


@dataclass
class Staged:
    """What the upload left: the file, its sha256 and size, and the other form fields."""

    path: Path | None = None
    sha256: str = ""
    size_bytes: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def check_filename(name: str) -> str:
    """A bare file name: no folder part, no ``..``, no hidden file (the name picks the format)."""
    if "/" in name or "\\" in name or "\x00" in name or not _SAFE_NAME.match(name) or ".." in name:
        raise UnsafeModelError(
            f"upload file name {name!r} is refused: it must be a bare file name",
            hint="send the file as e.g. filename=model.onnx (no folders, no '..')",
        )
    return name


@contextmanager
def staging(root: Path) -> Iterator[Path]:
    folder = root / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Receiver:
    """python-multipart callbacks: headers → which part, data → the staging file or a field."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.staged = Staged()
        self._header = b""
        self._headers: dict[str, bytes] = {}
        self._out: IO[bytes] | None = None
        self._field: tuple[str, bytearray] | None = None
        self._hash = hashlib.sha256()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_headers_finished": self._headers_done,
            "on_part_data": self._data, "on_part_end": self._end,
        }  # fmt: skip

    def _begin(self) -> None:
        self._headers, self._header = {}, b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header = data[start:end].lower()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header.decode("latin-1")] = data[start:end]

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            self._field = (name, bytearray())
            return
        if self.staged.path is not None:
            raise ConfigError("the upload has more than one file", hint="send one model file per request")
        self.staged.path = self.folder / check_filename(filename.decode("utf-8", "replace"))
        self._out = self.staged.path.open("wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._out is not None:
            self.staged.size_bytes += len(chunk)
            if self.staged.size_bytes > self.max_bytes:
                raise ModelTooLargeError(
                    f"the upload is over the limit of {self.max_bytes} bytes",
                    hint="raise THRIFTY_MAX_MODEL_BYTES on the server, or send a smaller model",
                )
            self._hash.update(chunk)
            self._out.write(chunk)
        elif self._field is not None:
            self._field[1].extend(chunk)
            if len(self._field[1]) > MAX_FIELD_BYTES:
                raise ConfigError(f"form field {self._field[0]!r} is too long", hint="keep fields short")

    def _end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
            self.staged.sha256 = self._hash.hexdigest()
        elif self._field is not None:
            self.staged.fields[self._field[0]] = self._field[1].decode("utf-8", "replace")
            self._field = None

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def receive(content_type: str, chunks: AsyncIterator[bytes], folder: Path, max_bytes: int) -> Staged:
    """Parse a multipart body into ``folder``: at most one file, cut off past ``max_bytes``."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ConfigError(
            f"an upload must be multipart/form-data, not {content_type or 'no content type'!r}",
            hint="send the model as a form field named 'file' (curl -F file=@model.onnx)",
        )
    receiver = _Receiver(folder, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except ValueError as exc:  # python-multipart's MultipartParseError
        raise CorruptModelError(
            f"the multipart body is malformed: {exc}", hint="send it with a form library"
        ) from exc
    finally:
        receiver.close()
    if receiver.staged.path is None or receiver.staged.size_bytes == 0:
        raise ConfigError(
            "the upload has no file (or an empty one)", hint="send the model as form field 'file'"
        )
    return receiver.staged


def refuse_declared_oversize(content_length: str | None, max_bytes: int) -> None:
    """Refuse before reading a byte when the declared length is already past the limit (plus room
    for the multipart framing and the small fields)."""
    if content_length and content_length.isdigit() and int(content_length) > max_bytes + 65_536:
        raise ModelTooLargeError(
            f"the upload declares {int(content_length)} bytes, over the limit of {max_bytes}",
            hint="raise THRIFTY_MAX_MODEL_BYTES on the server, or send a smaller model",
        )


async def upload_model(
    headers: Mapping[str, str],
    chunks: AsyncIterator[bytes],
    *,
    registry: Registry,
    settings: Settings,
    before_ingest: Callable[[Staged], None] | None = None,
) -> tuple[IngestResult, Staged]:
    """The whole upload, for the API and the dashboard alike: refuse a declared oversize, stream the
    body to a staging folder, let ``before_ingest`` refuse it (the dashboard's CSRF check), then
    ``ingest_model`` (stores nothing until the model passed). The staging folder is always removed."""
    from starlette.concurrency import run_in_threadpool

    from thrifty import runtime
    from thrifty.ingest import ingest_model

    refuse_declared_oversize(headers.get("content-length"), settings.max_model_bytes)
    with staging(settings.home) as folder:
        staged = await receive(headers.get("content-type", ""), chunks, folder, settings.max_model_bytes)
        if before_ingest is not None:
            before_ingest(staged)
        assert staged.path is not None
        try:
            result = await run_in_threadpool(
                ingest_model, staged.path, staged.fields.get("name") or None,
                registry=registry, store=runtime.store(settings), max_bytes=settings.max_model_bytes,
            )  # fmt: skip
        except ThriftyError as exc:  # name the file as sent, not the server's staging folder
            staged_at = f"{folder}{os.sep}"
            if staged_at not in exc.message:
                raise
            raise type(exc)(exc.message.replace(staged_at, ""), hint=exc.hint) from exc
    return result, staged

"""Run a server or gateway handler on a socket until SIGTERM/SIGINT, then drain and stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable

from thrifty.serving.http import Handler, start_server

DRAIN_TIMEOUT_S = 30.0
LISTEN_BACKLOG = 2048


def bind_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound early so its port is known at once (port 0 = any free port).

    ``listen=False`` only reserves the port: connections are refused at once until the server
    starts (``serve_until_stopped`` listens), instead of piling up unanswered in an accept queue
    (a warm replica worker waits like that, possibly for hours, before it is given a model).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if listen:  # without SO_REUSEADDR nobody else can bind a reserved, not yet listening port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


async def serve_until_stopped(
    handler: Handler,
    sock: socket.socket,
    *,
    max_body_bytes: int,
    stop: asyncio.Event | None = None,
    on_started: Callable[[], Awaitable[None] | None] | None = None,
    drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve until ``stop`` is set (or a signal arrives); then refuse new connections and drain.
    With ``ssl_context`` the socket speaks HTTPS (a cloud replica's runtime container)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        # signal handlers exist only in the main thread; a BackgroundServer stops through ``stop``
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    server, tracker = await start_server(
        handler, "", 0, max_body_bytes=max_body_bytes, sock=sock, ssl_context=ssl_context
    )
    if on_started is not None:
        result = on_started()
        if result is not None:
            await result
    await stop.wait()
    server.close()
    await tracker.drain(drain_timeout_s)


class BackgroundServer:
    """A handler served from a thread with its own event loop (tests, benchmarks, notebooks).

    ``with BackgroundServer(make_handler) as url:`` — ``make_handler`` runs inside the loop's thread
    (so futures and tasks belong to that loop); leaving the block drains and stops the server, then
    awaits ``on_stop`` (e.g. a gateway's close) in that loop.
    """

    def __init__(
        self,
        make_handler: Callable[[], Handler],
        *,
        host: str = "127.0.0.1",
        max_body_bytes: int = 16 << 20,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._make_handler = make_handler
        self._ssl = ssl_context
        self._on_stop = on_stop
        self._sock = bind_socket(host, 0)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{self.port}"
        self._max_body = max_body_bytes
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from thrifty.serving.http import run

        run(self._body())

    async def _body(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            handler = self._make_handler()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        await serve_until_stopped(
            handler,
            self._sock,
            max_body_bytes=self._max_body,
            stop=self._stop,
            on_started=self._started.set,
            ssl_context=self._ssl,
        )
        if self._on_stop is not None:
            await self._on_stop()

    def __enter__(self) -> str:
        self._thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

"""Zero-copy blob GET from the filesystem (docs/DESIGN.md §3; ASGI spec, Extensions, "Zero Copy Send").

* :class:`FileRangeResponse` sends bytes ``[offset, offset+count)`` of a file with
  ``Content-Length`` (never chunked). If ``scope["extensions"]`` has ``http.response.zerocopysend``
  it sends ``http.response.start`` then one ``{"type": "http.response.zerocopysend", "file": <file
  object>, "offset", "count", "more_body": False}``; otherwise it reads 1 MiB chunks in a thread.
* :class:`ZeroCopyHttpToolsProtocol` / :class:`ZeroCopyH11Protocol` add that extension to uvicorn
  (cleartext only: TLS needs the bytes in user space). They flush the buffered head, then move the
  file in the kernel: ``loop.sendfile`` on asyncio; on uvloop (``loop.sendfile`` raises
  ``NotImplementedError``, ``add_writer`` on a transport fd is refused) a non-blocking
  ``os.sendfile`` loop on a ``dup`` of the socket fd, waiting for writability on the duplicate.

Servers use these through Berth's final protocol classes, which add a request-head deadline:
``berth_common.http.protocols.uvicorn_http_protocol``.

Relies on uvicorn internals (``HttpToolsProtocol._start_asgi_task``, ``RequestResponseCycle``),
checked on uvicorn 0.54 by ``tests/integration/test_zerocopy.py``. :data:`STATS` counts paths.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
import h11
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.protocols.utils import is_ssl

__all__ = ["STATS", "ZEROCOPY_SEND", "FileRangeResponse", "ZeroCopyH11Protocol", "ZeroCopyHttpToolsProtocol"]
__all__ += ["ZeroCopyStats"]

ZEROCOPY_SEND = "http.response.zerocopysend"
CHUNK_SIZE = 1024 * 1024
_MAX_SENDFILE = 4 * 1024 * 1024  # bytes per os.sendfile call, so one transfer cannot hog the loop
_log = logging.getLogger(__name__)


@dataclass
class ZeroCopyStats:
    """Process-wide counters of how file bodies were sent (for tests and metrics)."""

    loop_sendfile: int = 0  # transfers done by loop.sendfile (asyncio)
    os_sendfile: int = 0  # transfers done by the os.sendfile loop (uvloop)
    bytes_zerocopy: int = 0
    fallback_responses: int = 0  # FileRangeResponse without the extension (chunked reads)
    aborted: int = 0  # transfers cut short by a client disconnect or an I/O error


STATS = ZeroCopyStats()


class FileRangeResponse(Response):
    """Send bytes ``[offset, offset + count)`` of ``path`` with an exact ``Content-Length``.

    ``count=None`` means "to the end of the file" (the file is stat'ed here). The caller sets
    ``status_code=206`` and ``Content-Range`` for a range (RFC 9110 §14); this class never
    parses ``Range``. HEAD requests get the headers only. The file is opened once per call and
    closed on every path, including client disconnect.

    Raises:
        ValueError: negative ``offset``/``count`` or a ``Transfer-Encoding`` header (here and
            when sending, if the file is shorter than ``offset + count``).
        FileNotFoundError: ``count`` is None and ``path`` does not exist.
    """

    chunk_size = CHUNK_SIZE

    def __init__(
        self,
        path: Path,
        *,
        offset: int = 0,
        count: int | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "application/octet-stream",
    ) -> None:
        if offset < 0 or (count is not None and count < 0):
            raise ValueError(f"invalid byte range offset={offset} count={count}")
        given = {k: v for k, v in (headers or {}).items() if k.lower() != "content-length"}
        if any(k.lower() == "transfer-encoding" for k in given):
            raise ValueError("FileRangeResponse always uses Content-Length, never Transfer-Encoding")
        self.path = Path(path)
        self.offset = offset
        self.count = count if count is not None else max(self.path.stat().st_size - offset, 0)
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.init_headers({**given, "content-length": str(self.count)})

    def _open(self) -> IO[bytes]:
        file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by __call__
        size = os.fstat(file.fileno()).st_size
        if self.offset + self.count > size:
            file.close()
            raise ValueError(f"{self.path} has {size} bytes; {self.offset}+{self.count} requested")
        return file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point; see the class docstring."""
        head = scope.get("method", "GET").upper() == "HEAD"
        file = await anyio.to_thread.run_sync(self._open)
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            if head or self.count == 0:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif ZEROCOPY_SEND in scope.get("extensions", {}):
                message = {"type": ZEROCOPY_SEND, "file": file, "offset": self.offset, "count": self.count}
                await send({**message, "more_body": False})
            else:
                STATS.fallback_responses += 1
                await self._send_chunks(file, receive, send)
        finally:
            file.close()

    async def _send_chunks(self, file: IO[bytes], receive: Receive, send: Send) -> None:
        """Fallback: pread 1 MiB chunks in a thread; stop early when the client disconnects."""
        disconnected = anyio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await self._stream(file, send, disconnected)
            tg.cancel_scope.cancel()

    async def _stream(self, file: IO[bytes], send: Send, disconnected: anyio.Event) -> None:
        position, end = self.offset, self.offset + self.count
        while position < end and not disconnected.is_set():
            size = min(self.chunk_size, end - position)
            chunk = await anyio.to_thread.run_sync(os.pread, file.fileno(), size, position)
            if not chunk:
                raise ValueError(f"{self.path} shrank while being sent")
            position += len(chunk)
            try:
                await send({"type": "http.response.body", "body": chunk, "more_body": position < end})
            except OSError as exc:  # ASGI spec 2.4: send raises on a closed connection
                raise ClientDisconnect() from exc


# Server side: uvicorn protocols implementing the extension.


class _TransferAborted(Exception):
    """The body could not be completed (client gone or I/O error); the connection must close."""


_NO_LOOP_SENDFILE: set[type[asyncio.AbstractEventLoop]] = set()


async def _drain(cycle: Any) -> None:
    """Wait until the transport's write buffer is empty (the response head is on the wire).

    Uses uvicorn's flow control: with write-buffer limits of 0 the transport calls the
    protocol's ``pause_writing`` while anything is buffered and ``resume_writing`` once empty.
    """
    transport: asyncio.WriteTransport = cycle.transport
    if transport.get_write_buffer_size() == 0:
        return
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await cycle.flow.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


async def _loop_sendfile(cycle: Any, file: IO[bytes], offset: int, count: int) -> bool:
    """Try ``loop.sendfile``; False if this loop/transport has no native sendfile."""
    loop = asyncio.get_running_loop()
    if type(loop) in _NO_LOOP_SENDFILE:
        return False
    try:
        sent = await loop.sendfile(cycle.transport, file, offset, count, fallback=False)
    except NotImplementedError:
        _NO_LOOP_SENDFILE.add(type(loop))
        return False
    except asyncio.SendfileNotAvailableError:
        return False  # raised before the first byte; the os.sendfile loop reports the cause
    except OSError as exc:
        raise _TransferAborted(str(exc)) from exc
    if sent != count:
        raise _TransferAborted(f"file ended after {sent} of {count} bytes")
    STATS.loop_sendfile += 1
    return True


async def _writable(cycle: Any, fd: int) -> None:
    """Wait until ``fd`` is writable or the connection is lost."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    cycle.zerocopy_waiter = waiter

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)
        cycle.zerocopy_waiter = None


async def _os_sendfile(cycle: Any, file_fd: int, offset: int, count: int) -> None:
    """Non-blocking ``os.sendfile`` loop on a duplicate of the socket fd.

    The duplicate keeps the socket open (and the fd number ours) even if the transport is
    closed meanwhile, and may be registered with ``add_writer`` on every loop.
    """
    out = os.dup(cycle.transport.get_extra_info("socket").fileno())
    try:
        if os.get_blocking(out):  # never block the event loop
            raise _TransferAborted("socket is in blocking mode")
        sent = 0
        while sent < count:
            if cycle.disconnected:
                raise _TransferAborted("connection lost")
            try:
                n = os.sendfile(out, file_fd, offset + sent, min(count - sent, _MAX_SENDFILE))
            except BlockingIOError:
                await _writable(cycle, out)
                continue
            except OSError as exc:  # client gone (EPIPE, ECONNRESET) or file I/O error
                raise _TransferAborted(str(exc)) from exc
            if n == 0:
                raise _TransferAborted(f"file ended after {sent} of {count} bytes")
            sent += n
            await asyncio.sleep(0)  # let other connections run between chunks
    finally:
        os.close(out)
    STATS.os_sendfile += 1


async def _transfer(cycle: Any, file: Any, offset: int, count: int) -> None:
    """Write ``count`` file bytes from ``offset`` to the connection after the buffered head."""
    await _drain(cycle)
    if cycle.disconnected or cycle.transport.is_closing():
        raise _TransferAborted("connection lost")
    file_fd = file if isinstance(file, int) else file.fileno()
    fobj = file if hasattr(file, "seek") else open(file_fd, "rb", buffering=0, closefd=False)  # noqa: SIM115, ASYNC230
    if not await _loop_sendfile(cycle, fobj, offset, count):
        await _os_sendfile(cycle, file_fd, offset, count)


def _resolve(message: Message) -> tuple[Any, int, int]:
    """(file, offset, count) of a zerocopysend message; defaults per the ASGI extension."""
    file = message["file"]
    fd = file if isinstance(file, int) else file.fileno()
    offset = message.get("offset")
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    count = message.get("count")
    if count is None:
        count = os.fstat(fd).st_size - offset
    return file, int(offset), int(count)


async def _zerocopy_send(cycle: Any, message: Message, framing: Any) -> bool:
    """Handle one zerocopysend message; True if the body was sent, False if disconnected.

    ``framing(count)`` checks/records ``count`` against the response's Content-Length and
    raises RuntimeError when the response is chunked or too long (uvicorn's own messages).
    """
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return False
    if not cycle.response_started or cycle.response_complete:
        raise RuntimeError(f"Unexpected ASGI message '{ZEROCOPY_SEND}' at this point.")
    file, offset, count = _resolve(message)
    if cycle.scope["method"] == "HEAD" or count == 0:
        return True
    framing(count)
    try:
        await _transfer(cycle, file, offset, count)
    except _TransferAborted as exc:
        STATS.aborted += 1
        _log.info("zero-copy transfer aborted: %s", exc)
        cycle.disconnected = True
        cycle.transport.abort()
        return False
    STATS.bytes_zerocopy += count
    return True


def _end_body(message: Message) -> Any:
    return {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}


class _HttpToolsCycle(httptools_impl.RequestResponseCycle):
    async def send(self, message: Any) -> None:
        if message["type"] != ZEROCOPY_SEND:
            return await super().send(message)

        def framing(count: int) -> None:
            if self.chunked_encoding is not False:
                raise RuntimeError("zerocopysend needs a Content-Length response (no chunked encoding)")
            if count > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= count

        if await _zerocopy_send(self, message, framing):
            await super().send(_end_body(message))


class _H11Cycle(h11_impl.RequestResponseCycle):
    async def send(self, message: Any) -> None:
        if message["type"] != ZEROCOPY_SEND:
            return await super().send(message)

        def framing(count: int) -> None:
            # h11's sendfile pass-through only needs len(data) (h11 docs, "sendfile"); the
            # kernel writes the bytes. Raises LocalProtocolError if longer than Content-Length.
            event = h11.Data(data=range(count))  # type: ignore[arg-type]
            pieces = self.conn.send_with_data_passthrough(event)
            if pieces is None or len(pieces) != 1:
                raise RuntimeError("zerocopysend needs a Content-Length response (no chunked encoding)")

        if await _zerocopy_send(self, message, framing):
            await super().send(_end_body(message))


def _adopt(cycle: Any, cls: type, transport: asyncio.BaseTransport) -> None:
    """Give a fresh cycle (before its task runs) zero-copy support on cleartext connections."""
    if is_ssl(transport):  # type: ignore[arg-type]
        return
    cycle.__class__ = cls
    cycle.scope.setdefault("extensions", {})[ZEROCOPY_SEND] = {}


def _wake(cycle: Any) -> None:
    waiter = getattr(cycle, "zerocopy_waiter", None)
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class ZeroCopyHttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol plus the ASGI Zero Copy Send extension."""

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        _adopt(cycle, _HttpToolsCycle, self.transport)
        super()._start_asgi_task(cycle, app)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        _wake(self.cycle)


class ZeroCopyH11Protocol(h11_impl.H11Protocol):
    """uvicorn's h11 HTTP/1.1 protocol plus the ASGI Zero Copy Send extension."""

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not before:
            _adopt(self.cycle, _H11Cycle, self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        _wake(self.cycle)

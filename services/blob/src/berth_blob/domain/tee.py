"""A blob fetch's bytes handed to the client that started it, while they are being stored.

The fetch (``berth_blob.domain.cache``) runs as its own task and ``offer``s each chunk after
writing it to storage; the leader's response reads them through ``window`` (the whole blob, or
a ``Range``). Memory stays bounded: at most ``DEPTH`` chunks (1 MiB each) wait for the client,
and a client that takes none for ``idle_timeout`` seconds is let go (the fetch carries on
without it and its connection is cut). The last piece of the window is held back until the
fetch has verified the digest and recorded the blob: if verification fails the client's stream
is cut short, so it never receives a complete body of wrong bytes (it fails its own check).
A client that goes away does not stop the fetch: the next pull finds the blob stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

DEPTH = 8  # chunks buffered for the client


class StreamCut(Exception):
    """The fetch failed (upstream error, short body, digest mismatch): the client's response
    ends before its declared length."""


class Tee:
    """One fetch → at most one listener, with backpressure (see the module docstring)."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=DEPTH)
        self.listening = True
        self.finished = asyncio.Event()
        self.error: BaseException | None = None

    async def offer(self, chunk: bytes | None) -> None:
        """Pass ``chunk`` (``None``: the end of the bytes) to the listener, if it still listens."""
        if not self.listening:
            return
        try:
            await asyncio.wait_for(self.queue.put(chunk), self.idle_timeout)
        except TimeoutError:
            self.detach()

    def finish(self, error: BaseException | None = None) -> None:
        """The fetch ended: recorded (``error`` None) or failed."""
        self.error = error
        self.finished.set()

    def detach(self) -> None:
        """The listener is gone (or has its window): stop buffering for it."""
        self.listening = False
        while not self.queue.empty():
            self.queue.get_nowait()

    async def _next(self) -> bytes | None:
        """The next chunk, or ``None`` at the end of the bytes or when the fetch ended."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        if self.finished.is_set():
            return None
        getter = asyncio.ensure_future(self.queue.get())
        ended = asyncio.ensure_future(self.finished.wait())
        try:
            await asyncio.wait({getter, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not getter.done():
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
        return getter.result() if getter.done() and not getter.cancelled() else None

    async def window(self, offset: int, count: int | None) -> AsyncIterator[bytes]:
        """Bytes ``[offset, offset + count)`` of the blob as the fetch passes them (``count``
        None: to the end); the last piece only once the blob is verified and recorded.

        Raises ``StreamCut`` (after what was sent) if the fetch failed.
        """
        end = offset + count if count is not None else None
        pos, held = 0, b""
        try:
            while end is None or pos < end:
                chunk = await self._next()
                if chunk is None:
                    break
                lo = max(offset - pos, 0)
                hi = len(chunk) if end is None else min(end - pos, len(chunk))
                pos += len(chunk)
                if hi > lo:
                    if held:
                        yield held
                    held = chunk if (lo, hi) == (0, len(chunk)) else chunk[lo:hi]
        finally:
            self.detach()
        await self.finished.wait()
        if self.error is not None:
            raise StreamCut(str(self.error))
        if held:
            yield held

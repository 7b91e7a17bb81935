"""Byte-stream plumbing for uploads: re-chunking, hashing while streaming, length checks.

Hashing runs in a worker thread (hashlib releases the GIL for large buffers) and overlaps the
storage driver's write of the same chunk and the event loop's receipt of the next one, so a
push costs about max(receive, hash, write) per chunk instead of their sum.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from anyio import to_thread

from berth_common.errors import RangeInvalid, SizeInvalid

CHUNK = 1 << 20  # bytes handed to the storage driver at a time
INLINE_HASH = 64 << 10  # smaller chunks are hashed on the event loop (~0.1 ms): no thread hop


async def rechunk(source: AsyncIterable[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    """Re-cut a stream of small pieces into chunks of at least ``size`` bytes (the last may be
    shorter); a piece already that large passes through uncopied, others are joined once."""
    pieces: list[bytes] = []
    held = 0
    async for piece in source:
        if not piece:
            continue
        pieces.append(piece)
        held += len(piece)
        if held >= size:
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
            pieces, held = [], 0
    if pieces:
        yield b"".join(pieces)


class Metered:
    """Wraps a byte stream: feeds ``hasher`` (if any), counts bytes, enforces an expected length.

    The hasher is fed in a worker thread, one chunk at a time and in order (chunks under
    ``INLINE_HASH`` bytes, e.g. a whole small layer, directly); iteration ends only after the
    last chunk is hashed, so ``hasher`` is complete once the consumer is done.

    Raises (from iteration, so the storage driver rolls the partial append back):
        RangeInvalid: more or fewer bytes than the ``Content-Range`` declared.
        SizeInvalid: more or fewer bytes than the ``Content-Length`` declared.
    """

    def __init__(
        self,
        source: AsyncIterable[bytes],
        hasher: Any | None,
        expected: int | None = None,
        *,
        from_range: bool = False,
    ) -> None:
        self.source, self.hasher, self.expected, self.from_range = source, hasher, expected, from_range
        self.count = 0

    def _mismatch(self) -> Exception:
        msg = f"received {self.count} bytes, but {self.expected} were declared"
        return RangeInvalid(msg) if self.from_range else SizeInvalid(msg)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        hashing: asyncio.Future[None] | None = None
        try:
            async for chunk in rechunk(self.source):
                self.count += len(chunk)
                if self.expected is not None and self.count > self.expected:
                    raise self._mismatch()
                if self.hasher is not None:
                    if hashing is not None:
                        await hashing
                        hashing = None
                    if len(chunk) < INLINE_HASH:
                        self.hasher.update(chunk)
                    else:
                        hashing = asyncio.ensure_future(to_thread.run_sync(self.hasher.update, chunk))
                yield chunk
            if hashing is not None:
                await hashing
                hashing = None
            if self.expected is not None and self.count != self.expected:
                raise self._mismatch()
        finally:
            if hashing is not None and not hashing.done():
                await asyncio.shield(hashing)  # never leave a thread feeding a discarded hasher

"""Byte-stream plumbing for uploads: re-chunking, hashing while streaming, length checks."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from berth_common.errors import RangeInvalid, SizeInvalid

CHUNK = 1 << 20  # bytes handed to the storage driver at a time


async def rechunk(source: AsyncIterable[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    """Re-cut a stream of small pieces into ``size``-byte chunks (the last may be shorter)."""
    buffer = bytearray()
    async for piece in source:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class Metered:
    """Wraps a byte stream: feeds ``hasher`` (if any), counts bytes, enforces an expected length.

    Raises (from iteration, so the storage driver rolls the partial append back):
        RangeInvalid: more or fewer bytes than the ``Content-Range`` declared.
        SizeInvalid: more or fewer bytes than the ``Content-Length`` declared.
    """

    def __init__(self, source: AsyncIterable[bytes], hasher: Any | None,
                 expected: int | None = None, *, from_range: bool = False) -> None:
        self.source, self.hasher, self.expected, self.from_range = source, hasher, expected, from_range
        self.count = 0

    def _mismatch(self) -> Exception:
        msg = f"received {self.count} bytes, but {self.expected} were declared"
        return RangeInvalid(msg) if self.from_range else SizeInvalid(msg)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in rechunk(self.source):
            self.count += len(chunk)
            if self.expected is not None and self.count > self.expected:
                raise self._mismatch()
            if self.hasher is not None:
                self.hasher.update(chunk)
            yield chunk
        if self.expected is not None and self.count != self.expected:
            raise self._mismatch()

"""The Azure Blob driver's resumable writer: staged blocks (Put Block), committed by one Put Block
List naming exactly the recorded blocks (Azure Blob REST API, "Put Block", "Put Block List").

Block ids are ``<16 hex of this writer instance><8-digit sequence>``: unique per writer, so a
superseded writer (one whose process stalled while another resumed) stages only blocks that no
recorded state names, and the commit leaves them out (Azure drops uncommitted blocks a commit
does not list). All ids have the same length, as Azure requires within one blob.

State (``WriterState.data``): ``{"blocks": [[id, size], …]}``. Blocks hold at least 4 MiB while
writing (more as the object grows: 50,000 blocks reach 61 TiB); a ``flush`` stages whatever is
buffered, of any size.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Any, cast

import anyio
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobClient

from ._azuresettings import LIBRARY_ERRORS, translate
from ._objectstore import MiB, part_size
from .base import ObjectNotFound, WriterState, WriterStateInvalid

MIN_BLOCK = 4 * MiB
MAX_BLOCK = 4000 * MiB
_BLOCK_ID = re.compile(r"[0-9a-f]{16}[0-9]{8}")
Blocks = list[tuple[str, int]]


@contextlib.contextmanager
def mapped(path: str) -> Iterator[None]:
    """Re-raise azure-core and aiohttp exceptions as the protocol's errors for ``path``."""
    try:
        yield
    except LIBRARY_ERRORS as exc:
        raise translate(exc, path) from exc


def parse_blocks(state: WriterState, path: str) -> Blocks:
    """The blocks a state from ``AzureWriter.flush`` names (possibly revived from JSON).

    Raises:
        ValueError: negative size.
        WriterStateInvalid: not such a state, or the blocks do not add up to ``state.size``.
    """
    if state.size < 0:
        raise ValueError(f"negative resume size {state.size}")
    try:
        blocks = _parse(state.data)
    except (KeyError, TypeError, ValueError) as exc:
        raise WriterStateInvalid(path, f"not an Azure writer state ({exc})") from None
    if sum(size for _, size in blocks) != state.size:
        raise WriterStateInvalid(path, f"the recorded blocks do not hold {state.size} bytes")
    return blocks


def _parse(data: Mapping[str, Any]) -> Blocks:
    blocks = [(str(block_id), int(size)) for block_id, size in data.get("blocks") or []]
    if any(not _BLOCK_ID.fullmatch(block_id) or size <= 0 for block_id, size in blocks):
        raise ValueError("block")
    return blocks


async def check_blocks(blob: BlobClient, path: str, blocks: Blocks) -> None:
    """Every recorded block is still staged (Get Block List), with its recorded size.

    Raises:
        WriterStateInvalid: the blob or a block is gone, or a size differs.
    """
    if not blocks:
        return
    try:
        with mapped(path):
            _, uncommitted = await blob.get_block_list("uncommitted")
    except ObjectNotFound:
        raise WriterStateInvalid(path, "its staged blocks are gone") from None
    staged = {block.id: block.size for block in uncommitted}
    for block_id, size in blocks:
        if staged.get(block_id) != size:
            raise WriterStateInvalid(path, f"block {block_id} is gone or has another size")


async def discard_uncommitted(blob: BlobClient, path: str) -> None:
    """Remove the staged blocks of a blob that has no committed content: commit an empty list
    only if no blob exists (so nothing committed is ever lost, even one committed meanwhile),
    then delete that empty blob only if it is still the one just made."""
    with mapped(path):
        try:
            made = await blob.commit_block_list([], if_none_match="*")
        except (ResourceExistsError, ResourceModifiedError):
            return  # committed content exists: its uncommitted blocks expire in Azure after a week
        with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
            await blob.delete_blob(if_match=made["etag"])


class AzureWriter:
    """``Writer`` of ``AzureDriver`` (see the module docstring). Holds at most one block.

    ``owns_path=False`` (the driver's one-shot ``write``) puts a small object with one Put Blob
    and never discards blocks it did not stage.
    """

    def __init__(self, blob: BlobClient, path: str, blocks: Blocks, *, owns_path: bool) -> None:
        self.path, self._blob, self._blocks, self._owns_path = path, blob, list(blocks), owns_path
        self._token, self._seq = secrets.token_hex(8), 0
        self._stored = sum(size for _, size in blocks)
        self._buf, self._open, self._staged_here = bytearray(), True, False

    @property
    def size(self) -> int:
        """Bytes written in total, resumed ones included."""
        return self._stored + len(self._buf)

    async def write(self, data: bytes) -> None:
        """Append ``data``; each full block is staged before this returns."""
        self._check_open()
        view = memoryview(data)
        while view:
            target = part_size(self._stored, minimum=MIN_BLOCK, maximum=MAX_BLOCK, divisor=5000)
            room = target - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) >= target:
                await self._guard_stage()

    async def flush(self) -> WriterState:
        """Stage what is buffered (any size); return the state naming every block in order."""
        self._check_open()
        if self._buf:
            await self._guard_stage()
        return WriterState(self.size, {"blocks": [[block_id, size] for block_id, size in self._blocks]})

    async def commit(self) -> None:
        """Put Block List of exactly the recorded blocks and this writer's own (one Put Blob
        when a one-shot write never filled a block).

        Raises:
            WriterStateInvalid: a listed block is gone (Azure answers InvalidBlockList).
        """
        self._check_open()
        self._open = False
        with mapped(self.path):
            if not self._owns_path and not self._blocks:
                await self._blob.upload_blob(bytes(self._buf), overwrite=True)
                return
            if self._buf:
                await self._stage()
            await self._blob.commit_block_list([BlobBlock(block_id) for block_id, _ in self._blocks])

    async def cancel(self) -> None:
        """Remove the staged blocks (and the uncommitted blob that holds them)."""
        self._open, self._buf = False, bytearray()
        with anyio.CancelScope(shield=True):
            await discard_uncommitted(self._blob, self.path)

    async def close(self) -> None:
        """Drop unflushed bytes; staged blocks stay resumable (Azure keeps them a week)."""
        self._open, self._buf = False, bytearray()

    async def abort_own(self) -> None:
        """After a failed one-shot ``write``: discard what it staged, shielded."""
        self._open, self._buf = False, bytearray()
        if self._staged_here:
            with anyio.CancelScope(shield=True):
                await discard_uncommitted(self._blob, self.path)

    async def _stage(self) -> None:
        block_id = f"{self._token}{self._seq:08d}"
        self._seq += 1
        buf, self._buf = self._buf, bytearray()
        self._staged_here = True
        with mapped(self.path):
            # aiohttp sends any bytes-like body; bytes(buf) would hold the block twice
            await self._blob.stage_block(block_id, cast(bytes, buf), length=len(buf))
        self._blocks.append((block_id, len(buf)))
        self._stored += len(buf)

    async def _guard_stage(self) -> None:
        """Stage the buffer; any failure (or cancellation) ends the writer."""
        try:
            await self._stage()
        except BaseException:
            self._open, self._buf = False, bytearray()
            raise

    def _check_open(self) -> None:
        if not self._open:
            raise ValueError(f"the writer of {self.path} is closed")

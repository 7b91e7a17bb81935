"""Running sha256 states of open upload sessions, so a digest costs no second read.

Python's hashlib states cannot be saved, so the state lives in process memory, keyed by upload
id and the offset it has consumed. When it is missing or stale (after a restart, or when another
process handled an earlier chunk), it is rebuilt by hashing the stored bytes once — uploads
survive restarts, at the cost of one re-read.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from berth_common.storage import StorageDriver

MAX_ENTRIES = 4096


class HasherCache:
    """upload id → (offset consumed, sha256 state); least recently used entries are dropped."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    async def at(self, upload_id: str, offset: int, storage: StorageDriver, path: str) -> Any:
        """A sha256 state that has consumed exactly the first ``offset`` bytes of the upload."""
        entry = self._entries.pop(upload_id, None)
        if entry is not None and entry[0] == offset:
            return entry[1]
        hasher = hashlib.sha256()
        if offset:
            async for chunk in storage.read(path, 0, offset):
                hasher.update(chunk)
        return hasher

    def keep(self, upload_id: str, offset: int, hasher: Any) -> None:
        """Remember ``hasher`` as the state after ``offset`` bytes."""
        self._entries[upload_id] = (offset, hasher)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        """Drop the state of a finished session."""
        self._entries.pop(upload_id, None)

"""A writer that stalls past its lease and wakes up later (a zombie) never harms the session.

docs/ARCHITECTURE.md, "Upload sessions": when a lease expires, the next request takes the
session over and copies the recorded bytes to a new generation's object; the stalled writer,
once it runs again, must lose cleanly — ``429`` (retryable, its bytes do not count) — and the
upload completes with the right content. SIGSTOP then SIGCONT of a real ``berth serve all``
process is the stalled writer (``tests.support.cluster``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.cluster import cluster

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_a_stalled_patch_that_wakes_after_a_takeover_gets_429(tmp_path: Path) -> None:
    """Process A holds the lease of a PATCH whose last bytes it has not written yet (they sit in
    its buffer); A is stopped past the lease, process B takes the session over (which moves the
    segment A continues into B's copy) and appends; A wakes and flushes. A's flush found its
    segment gone and answered 500 UNKNOWN (every trial); it must be 429, and the blob B's
    client completes must be exactly what B's client acknowledged."""
    async with cluster(tmp_path, BERTH_UPLOADS__LEASE_SECONDS="1") as group:
        survivor = group.client(1)
        zombie_pid = group.servers[0].proc.pid
        try:
            assert (await survivor.post("/api/feeds", json={"name": "a"})).status_code == 201
            for _ in range(3):
                first, more = os.urandom(2 * MiB), os.urandom(100)
                location = (await survivor.post("/v2/a/z/blobs/uploads/")).headers["location"]
                assert (await survivor.patch(location, content=first)).status_code == 202
                wake = asyncio.Event()

                async def body(wake: asyncio.Event = wake) -> AsyncIterator[bytes]:
                    yield b"Z" * 1000
                    await wake.wait()
                    yield b"Z" * 1000

                async with httpx.AsyncClient(base_url=group.servers[0].url, auth=survivor.auth) as c0:
                    stalled = asyncio.create_task(c0.patch(location, content=body(), timeout=60))
                    await _until_leased(group.database_url, location)
                    os.killpg(zombie_pid, signal.SIGSTOP)
                    try:
                        r = await survivor.patch(location, content=more)  # waits out A's lease
                        assert r.status_code == 202, r.text
                        wake.set()
                    finally:
                        os.killpg(zombie_pid, signal.SIGCONT)
                    late = await stalled
                assert late.status_code == 429, (late.status_code, late.text)
                assert late.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
                r = await survivor.put(location, params={"digest": sha256(first + more)})
                assert r.status_code == 201, r.text
                got = await survivor.get(f"/v2/a/z/blobs/{sha256(first + more)}")
                assert got.content == first + more
        finally:
            await survivor.aclose()


async def _until_leased(database_url: str, location: str) -> None:
    """Return once the session's lease is held (process A's PATCH has started writing)."""
    conn = await asyncpg.connect(database_url)
    query = "SELECT lease IS NOT NULL FROM blob.upload_state WHERE id = $1"
    try:
        for _ in range(600):
            if await conn.fetchval(query, location.rsplit("/", 1)[1]):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the PATCH never took the session's lease")
    finally:
        await conn.close()

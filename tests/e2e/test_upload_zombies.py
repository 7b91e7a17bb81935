"""A writer that stalls past its lease and wakes up later (a zombie) never harms the session.

docs/ARCHITECTURE.md, "Storage", upload sessions: when a lease expires, the next request takes the
session over and copies the recorded bytes to a new generation's object; the stalled writer,
once it runs again, must lose cleanly — ``429`` (retryable, its bytes do not count) — and the
upload completes with the right content. SIGSTOP then SIGCONT of a real ``berth serve all``
process is the stalled writer (``tests.support.cluster``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from berth_common.db.locks import blob_lock_key
from berth_common.eventstore.store import APPEND_LOCK
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


async def test_a_request_to_a_session_being_committed_waits_boundedly(tmp_path: Path) -> None:
    """Process A's closing PUT holds the session's row (it ended the session) until its commit
    transaction ends — for as long as placing the content takes (a large S3 copy, a slow disk),
    here held open by the event store's append lock, which the test takes. A's lease renewal
    waits on that row too, so the lease expires; a PATCH of the same session on process B then
    waited on the row lock without bound, holding one of B's pooled connections (every retry
    another): it must wait at most ``uploads.busy_wait_seconds`` and answer 429 while A's
    commit is still open, as for a session whose lease is held."""
    settings = {"BERTH_UPLOADS__BUSY_WAIT_SECONDS": "1", "BERTH_UPLOADS__LEASE_SECONDS": "1"}
    async with cluster(tmp_path, 2, **settings) as group:
        a, b = group.client(0), group.client(1)
        conn = await asyncpg.connect(group.database_url)
        try:
            assert (await a.post("/api/feeds", json={"name": "a"})).status_code == 201
            data = os.urandom(MiB)
            location = (await a.post("/v2/a/c/blobs/uploads/")).headers["location"]
            assert (await a.patch(location, content=data)).status_code == 202
            assert (await b.get(location)).status_code == 204  # B's token, before the lock
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                put = asyncio.create_task(a.put(location, params={"digest": sha256(data)}))
                await _until_row_locked(group.database_url, location)
                await _until_lease_expired(conn, location)
                chunk = {"Content-Range": f"{len(data)}-{len(data)}"}
                r = await b.patch(location, content=b"x", headers=chunk, timeout=30)
                assert r.status_code == 429, r.text  # answered while A's commit still holds the row
                assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
            assert (await put).status_code == 201
            assert (await b.get(f"/v2/a/c/blobs/{sha256(data)}")).content == data
        finally:
            await conn.close()
            await a.aclose()
            await b.aclose()


async def _until_row_locked(database_url: str, location: str) -> None:
    """Return once another transaction holds the session's ``blob.upload_state`` row."""
    conn = await asyncpg.connect(database_url)
    query = "SELECT 1 FROM blob.upload_state WHERE id = $1 FOR UPDATE NOWAIT"
    try:
        for _ in range(600):
            try:
                async with conn.transaction():
                    await conn.fetchval(query, location.rsplit("/", 1)[1])
            except asyncpg.LockNotAvailableError:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the commit never locked the session's row")
    finally:
        await conn.close()


async def _until_lease_expired(conn: asyncpg.Connection, location: str) -> None:
    """Return once the session's lease has expired (a plain read: row locks do not block it)."""
    query = "SELECT lease_until < clock_timestamp() FROM blob.upload_state WHERE id = $1"
    for _ in range(600):
        if await conn.fetchval(query, location.rsplit("/", 1)[1]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the lease never expired")


async def test_a_process_frozen_mid_commit_does_not_block_other_pushes_of_the_layer(tmp_path: Path) -> None:
    """Process A is frozen (SIGSTOP: a VM pause, a hung store call, a network partition that
    keeps the TCP connection) inside the closing PUT's commit transaction, right after it took
    the feed's share lock and the blob's advisory lock. Every other commit of the same content
    in that store — on any process, e.g. the next push of a popular base layer — then waits on
    that advisory lock, and GC on it (holding the GC lock), for as long as A stays frozen.

    Bounded by PostgreSQL's ``idle_in_transaction_session_timeout`` on Berth's sessions
    (``database.idle_transaction_seconds``, above the longest store call inside a commit): the
    frozen process's session is ended and its locks released, and the other push completes."""
    settings = {"BERTH_DATABASE__IDLE_TRANSACTION_SECONDS": "2"}
    async with cluster(tmp_path, 2, **settings) as group:
        a, b = group.client(0), group.client(1)
        frozen = group.servers[0].proc.pid
        conn = await asyncpg.connect(group.database_url)
        try:
            assert (await a.post("/api/feeds", json={"name": "a"})).status_code == 201
            layer = os.urandom(1000)
            location = (await a.post("/v2/a/one/blobs/uploads/")).headers["location"]
            assert (await a.patch(location, content=layer)).status_code == 202
            assert (await b.post("/v2/a/two/blobs/uploads/")).status_code == 202  # B's token
            async with conn.transaction():  # A's commit waits here, holding the feed row
                key = blob_lock_key("default", sha256(layer))  # the default store's root location
                await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
                put = asyncio.create_task(a.put(location, params={"digest": sha256(layer)}))
                await _until_waiting_on_advisory_lock(conn)
                os.killpg(frozen, signal.SIGSTOP)
            # A's backend now holds the blob's lock in a transaction its frozen client never ends.
            try:
                r = await b.post(
                    f"/v2/a/two/blobs/uploads/?digest={sha256(layer)}", content=layer, timeout=30
                )
                assert r.status_code == 201, r.text
            finally:
                os.killpg(frozen, signal.SIGCONT)
                with contextlib.suppress(httpx.HTTPError):
                    await put
        finally:
            await conn.close()
            await a.aclose()
            await b.aclose()


async def _until_waiting_on_advisory_lock(conn: asyncpg.Connection) -> None:
    """Return once a backend of this database waits on an advisory lock (A's commit)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    for _ in range(600):
        if await conn.fetchval(query):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the commit never waited on the blob's lock")

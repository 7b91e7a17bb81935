"""One writer per upload session across every process and replica: leases in PostgreSQL.

docs/ARCHITECTURE.md, "Storage", upload sessions. A request that writes to a session (PATCH, the closing
PUT, DELETE) first takes the session's **lease** by a compare-and-set on its row in
``blob.upload_state`` — no database connection is held while the client's body streams. The
lease is renewed while the request runs (``Lease.kept_alive``) and expires if its holder dies.
The bytes go to a place that only the lease holder writes (the current generation's data object;
see ``takeover`` in ``uploads``), and a second compare-and-set (``publish``) records the new
size, the hash state covering exactly those bytes and the storage writer's state — only if the
lease is still held. A request that lost its lease gets a retryable error and its bytes never
count: nothing is acknowledged that was not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from berth_blob.domain.feeds import feed_unknown
from berth_common.db import Connection
from berth_common.domain_errors import SessionBusy, SessionTakenOver
from berth_common.errors import BlobUploadUnknown
from berth_common.oci.reference import RepositoryName
from berth_common.storage import Location, WriterState

POLL_SECONDS: Final = (0.02, 0.05, 0.1, 0.25)  # waits between tries for a busy session

# A session of a deleted incarnation of its feed does not exist (docs/ARCHITECTURE.md, "Feed
# incarnations"): the join with api's published view hides it at once, whatever the bus's lag.
_SESSION = (
    "blob.upload_state s JOIN blob.uploads u ON u.id = s.id"
    " JOIN api.v_feeds f ON f.name = u.feed AND (u.incarnation IS NULL OR f.incarnation = u.incarnation)"
)
# SKIP LOCKED: a row locked by a transaction still open — a closing PUT's commit, which ends the
# session and places its content while holding the row, for as long as the store takes — is
# busy like a held lease (bounded wait, then 429), never a wait without bound on the lock.
_ACQUIRE = f"""
WITH current AS (
    SELECT s.id, s.lease IS NOT NULL AS held, u.incarnation, u.store FROM {_SESSION}
     WHERE s.id = $1 AND u.repository = $2 AND (s.lease IS NULL OR s.lease_until < now())
       FOR UPDATE OF s SKIP LOCKED)
UPDATE blob.upload_state s SET lease = $3, lease_until = now() + make_interval(secs => $4)
  FROM current WHERE s.id = current.id
RETURNING s.size, s.hash_state, s.writer, s.generation, current.held AS takeover,
          current.incarnation::text AS incarnation, current.store
"""
_EXISTS = f"SELECT 1 FROM {_SESSION} WHERE s.id = $1 AND u.repository = $2"
# A session's status (GET), hidden like the rest once its feed's incarnation ended.
STATUS: Final = (
    "SELECT u.id::text AS id, u.repository, u.size FROM blob.uploads u JOIN api.v_feeds f"
    " ON f.name = u.feed AND (u.incarnation IS NULL OR f.incarnation = u.incarnation) WHERE u.id = $1"
)
_RENEW = (
    "UPDATE blob.upload_state SET lease_until = now() + make_interval(secs => $3)"
    " WHERE id = $1 AND lease = $2"
)
_PUBLISH = (
    "UPDATE blob.upload_state SET size = $3, hash_state = $4, writer = $5, generation = $6,"
    " lease = CASE WHEN $7 THEN NULL ELSE lease END,"
    " lease_until = CASE WHEN $7 THEN NULL ELSE lease_until END"
    " WHERE id = $1 AND lease = $2 AND size = $8"
)


class LeaseLost(SessionTakenOver):
    """Another request took this session over (our lease expired): our bytes do not count
    (on the wire: 429 with the session's ``Range``, ``berth_common.http.errors.WIRE``)."""


@dataclass
class Lease:
    """The right to write to one session, and the session's recorded state when it was taken.

    Attributes:
        upload_id, token: the session and this holder's lease id.
        size: bytes recorded (durable, acknowledged) so far.
        hash_state: the resumable SHA-256 state after ``size`` bytes, or None (re-hash).
        writer: the storage writer's state after ``size`` bytes (None: nothing written yet).
        generation: which data object holds the bytes (``Location.upload_data``).
        takeover: the previous holder's lease had expired (it may still be writing).
        incarnation: the life of the feed the session belongs to (None: recorded before
            incarnations existed).
        store: the key of the location the session's bytes go to (``Location.key``).
        lost: set when renewal finds the lease gone; writers stop at the next chunk.
    """

    upload_id: str
    token: str
    ttl: float
    size: int
    hash_state: bytes | None
    writer: dict[str, Any] | None
    generation: int
    takeover: bool
    incarnation: str | None = None
    store: str = ""
    lost: bool = field(default=False)

    @classmethod
    def of_row(cls, upload_id: str, row: asyncpg.Record | Mapping[str, Any]) -> Lease:
        """A lease-less view of a session's recorded state (``size``, ``writer``, ``generation``
        and ``store`` columns), for cleanup that ends sessions nobody holds."""
        return cls(
            upload_id, "", 0.0, row["size"], None, row["writer"], row["generation"], False, None, row["store"]
        )

    @property
    def location(self) -> Location:
        """Where the session's bytes are."""
        return Location.parse(self.store)

    def resume_state(self) -> WriterState | None:
        """The state a storage writer resumes from, or None for a session with no data yet."""
        if self.writer is None and self.size == 0:
            return None
        return WriterState(self.size, self.writer or {})

    def recorded(
        self, size: int, hash_state: bytes | None, writer: WriterState | None, generation: int
    ) -> None:
        """Take over what ``publish`` recorded, after its transaction committed."""
        self.size, self.hash_state, self.generation = size, hash_state, generation
        self.writer = None if writer is None else dict(writer.data)

    def check(self) -> None:
        """Raise ``LeaseLost`` if renewal found the lease taken over."""
        if self.lost:
            raise LeaseLost(self.size)

    @contextlib.asynccontextmanager
    async def kept_alive(self, pool: asyncpg.Pool) -> AsyncIterator[Lease]:
        """Renew the lease every third of its time-to-live while the block runs."""
        task = asyncio.create_task(self._renew_forever(pool))
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_forever(self, pool: asyncpg.Pool) -> None:
        deadline = time.monotonic() + self.ttl
        while not self.lost:
            await asyncio.sleep(self.ttl / 3)
            try:
                status = await pool.execute(_RENEW, self.upload_id, self.token, self.ttl)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.lost = time.monotonic() > deadline  # unknown: assume lost once it expired
                continue
            self.lost = status != "UPDATE 1"
            deadline = time.monotonic() + self.ttl


async def acquire(pool: asyncpg.Pool, repository: str, upload_id: str, *, ttl: float, wait: float) -> Lease:
    """Take the lease of session ``upload_id`` in ``repository``, waiting up to ``wait`` seconds
    while another request holds it.

    Raises:
        BlobUploadUnknown: no such open session in ``repository`` (or only in a deleted
            incarnation of its feed).
        NameUnknown: the repository's feed does not exist.
        SessionBusy: still held by another request after ``wait`` seconds (429, retryable).
    """
    token, start = str(uuid.uuid4()), time.monotonic()
    for attempt in range(1_000_000):
        row = await pool.fetchrow(_ACQUIRE, upload_id, repository, token, ttl)
        if row is not None:
            writer = row["writer"]
            return Lease(
                upload_id, token, ttl, row["size"], row["hash_state"],
                json.loads(writer) if isinstance(writer, str) else writer,
                row["generation"], row["takeover"], row["incarnation"], row["store"],
            )  # fmt: skip
        if not await pool.fetchval(_EXISTS, upload_id, repository):
            name = RepositoryName.parse(repository)
            if not await pool.fetchval("SELECT 1 FROM api.v_feeds WHERE name = $1", name.feed):
                raise feed_unknown(name)
            raise BlobUploadUnknown(f"no upload session {upload_id} in repository {repository}")
        waited = time.monotonic() - start
        if waited >= wait:
            raise SessionBusy(waited)
        await asyncio.sleep(min(POLL_SECONDS[min(attempt, len(POLL_SECONDS) - 1)], wait - waited))
    raise AssertionError("unreachable")


async def create(conn: Connection, upload_id: str, lease: Lease | None = None) -> None:
    """Insert the working state of a new session (in the transaction of ``UploadStarted``),
    optionally already leased by ``lease`` (a monolithic upload writes at once)."""
    await conn.execute(
        "INSERT INTO blob.upload_state (id, lease, lease_until)"
        " VALUES ($1, $2, CASE WHEN $2::uuid IS NULL THEN NULL"
        " ELSE now() + make_interval(secs => $3) END)",
        upload_id, None if lease is None else lease.token, 0.0 if lease is None else lease.ttl,
    )  # fmt: skip


async def publish(
    conn: Connection, lease: Lease, size: int, hash_state: bytes | None, writer: WriterState | None,
    generation: int, *, release: bool,
) -> None:  # fmt: skip
    """Record ``size`` bytes with the hash and writer states covering them — only if ``lease``
    still holds the session at its recorded size; ``release`` gives the lease up. ``lease``
    itself is not changed: once the caller's transaction has committed it calls
    ``lease.recorded(...)`` (a retried transaction must compare against the old size).

    Raises:
        LeaseLost: the lease was taken over (nothing recorded; the caller's transaction rolls
            back).
    """
    data = None if writer is None else dict(writer.data)
    status = await conn.execute(
        _PUBLISH, lease.upload_id, lease.token, size, hash_state, data, generation, release, lease.size
    )
    if status != "UPDATE 1":
        raise LeaseLost(lease.size)


async def end(conn: Connection, lease: Lease) -> None:
    """Delete the session's working state (with its ending event) if ``lease`` still holds it.

    Raises:
        LeaseLost: the lease was taken over.
    """
    status = await conn.execute(
        "DELETE FROM blob.upload_state WHERE id = $1 AND lease = $2", lease.upload_id, lease.token
    )
    if status != "DELETE 1":
        raise LeaseLost(lease.size)


async def forget(conn: Connection, upload_id: str) -> None:
    """Delete a session's working state whoever holds it (purge, feed deletion)."""
    await conn.execute("DELETE FROM blob.upload_state WHERE id = $1", upload_id)


async def release(pool: asyncpg.Pool, lease: Lease) -> None:
    """Give the lease up without recording anything (the request failed); best effort — an
    unreleased lease simply expires."""
    with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        await pool.execute(
            "UPDATE blob.upload_state SET lease = NULL, lease_until = NULL WHERE id = $1 AND lease = $2",
            lease.upload_id, lease.token,
        )  # fmt: skip

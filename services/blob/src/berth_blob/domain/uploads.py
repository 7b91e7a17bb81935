"""Upload sessions and blob commits (OCI distribution spec v1.1, "Pushing blobs").

The commit path reads like a recipe: stream the bytes into the session (hashing as they
pass) → verify the digest → move the data to its content address → record the events
(``UploadCompleted``, ``BlobLinked``) and the projections in one transaction → forget the
session. A digest mismatch cancels the session and stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from berth_blob.domain.hashers import HasherCache
from berth_blob.domain.layout import FeedLayout, is_upload_id
from berth_blob.domain.locks import blob_lock_key
from berth_blob.domain.streams import Metered
from berth_blob.projections.tables import project
from berth_common.db import Connection
from berth_common.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    NameUnknown,
    RangeInvalid,
)
from berth_common.events import (
    BlobLinked,
    ChunkReceived,
    Metadata,
    UploadCancelled,
    UploadCompleted,
    UploadStarted,
)
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName
from berth_common.storage import InvalidOffset, ObjectNotFound, StorageDriver


@dataclass(frozen=True)
class Session:
    """An open upload session: its id, repository and the bytes received so far."""

    id: str
    repository: str
    size: int


def range_header(size: int) -> str:
    """The spec's inclusive ``Range`` of a session holding ``size`` bytes (``0-0`` when empty)."""
    return f"0-{max(size - 1, 0)}"


class Uploads:
    """Upload sessions of all feeds. One per process; holds per-session locks and hash states."""

    def __init__(self, store: EventStore, storage: StorageDriver) -> None:
        self.store, self.storage = store, storage
        self.hashers = HasherCache()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # upload id -> (lock, users)

    @contextlib.asynccontextmanager
    async def _exclusive(self, upload_id: str) -> AsyncIterator[None]:
        """Serialise this process's requests on one session; the entry goes with its last user."""
        lock, users = self._locks.get(upload_id, (asyncio.Lock(), 0))
        self._locks[upload_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            users = self._locks[upload_id][1] - 1
            if users:
                self._locks[upload_id] = (lock, users)
            else:
                del self._locks[upload_id]

    async def start(self, repository: RepositoryName, meta: Metadata) -> Session:
        """Open a session (``UploadStarted``). Raises ``NameUnknown`` for an unknown feed."""
        upload_id = str(uuid.uuid4())

        async def work(uow: UnitOfWork) -> None:
            await require_feed(uow.conn, repository)
            await uow.emit(
                f"upload:{upload_id}", UploadStarted(upload_id=upload_id, repository=str(repository))
            )

        await run_with_retry(self.store, work, projector=project, metadata=meta)
        return Session(upload_id, str(repository), 0)

    async def get(self, repository: RepositoryName, upload_id: str) -> Session:
        """The open session ``upload_id`` of ``repository``. Raises ``BlobUploadUnknown``."""
        if not is_upload_id(upload_id):
            raise BlobUploadUnknown(f"no upload session {upload_id[:64]!r}")
        row = await self.store.pool.fetchrow(
            "SELECT id::text, repository, size FROM blob.uploads WHERE id = $1", upload_id
        )
        if row is None or row["repository"] != str(repository):
            raise BlobUploadUnknown(f"no upload session {upload_id} in repository {repository}")
        return Session(row["id"], row["repository"], row["size"])

    async def append(
        self,
        repository: RepositoryName,
        upload_id: str,
        body: AsyncIterable[bytes],
        content_range: tuple[int, int] | None,
        length: int | None,
        meta: Metadata,
    ) -> Session:
        """Append a chunk (PATCH). ``content_range`` is the inclusive ``(start, end)`` if given.

        Raises:
            BlobUploadUnknown: no such session.
            RangeInvalid: ``start`` is not the session's size (out of order): nothing appended.
            SizeInvalid: the body length differs from ``Content-Length``.
        """
        async with self._exclusive(upload_id):
            session = await self.get(repository, upload_id)
            return await self._append(session, body, content_range, length, meta)

    async def _append(
        self,
        session: Session,
        body: AsyncIterable[bytes],
        content_range: tuple[int, int] | None,
        length: int | None,
        meta: Metadata,
    ) -> Session:
        expected = length
        if content_range is not None:
            start, end = content_range
            if start != session.size or end < start:
                raise RangeInvalid(
                    f"chunk starts at {start}, but the session holds {session.size} bytes",
                    headers={"Range": range_header(session.size)},
                )
            expected = end - start + 1
        layout = FeedLayout.of(session.repository)
        path = layout.upload_data(session.id)
        hasher = await self.hashers.at(session.id, session.size, self.storage, path)
        metered = Metered(body, hasher, expected, from_range=content_range is not None)
        try:
            new_size = await self._append_at(session, path, metered)
        except InvalidOffset:
            self.hashers.forget(session.id)
            raise RangeInvalid(
                "the session changed concurrently; retry from its Range",
                headers={"Range": range_header(session.size)},
            ) from None
        if metered.count:
            await self._record_chunk(session, metered.count, meta)
        self.hashers.keep(session.id, new_size, hasher)
        return Session(session.id, session.repository, new_size)

    async def _append_at(self, session: Session, path: str, chunks: AsyncIterable[bytes]) -> int:
        """Append at the recorded size; first drop unacknowledged bytes past it (``_trim``)."""
        try:
            return await self.storage.append(path, chunks, session.size)
        except InvalidOffset as exc:
            if exc.size is None or exc.size < session.size:
                raise
        await self._trim(session, path)  # nothing was read from ``chunks`` yet: retry once
        return await self.storage.append(path, chunks, session.size)

    async def _trim(self, session: Session, path: str) -> bool:
        """Cut the session's data back to its recorded size (no-op when it is not longer).
        Returns whether the data exists.

        A PATCH killed mid-stream (SIGKILL, power loss, a failed ``ChunkReceived`` commit)
        leaves bytes in storage that were never recorded nor acknowledged; the client resends
        from the ``Range`` it was given. The driver has no truncate: copy, then move over.
        """
        info = await self.storage.stat(path)
        if info is None or info.size <= session.size:
            return info is not None
        spare = f"{path}.trim"
        await self.storage.write(spare, self.storage.read(path, 0, session.size))
        await self.storage.move(spare, path)
        self.hashers.forget(session.id)
        return True

    async def _record_chunk(self, session: Session, count: int, meta: Metadata) -> None:
        async def work(uow: UnitOfWork) -> None:
            await uow.emit(
                f"upload:{session.id}",
                ChunkReceived(
                    upload_id=session.id, repository=session.repository, offset=session.size, length=count
                ),
            )

        await run_with_retry(self.store, work, projector=project, metadata=meta)

    async def complete(
        self,
        repository: RepositoryName,
        upload_id: str,
        digest: Digest,
        body: AsyncIterable[bytes] | None,
        content_range: tuple[int, int] | None,
        length: int | None,
        meta: Metadata,
    ) -> Digest:
        """Close the session (PUT ``?digest=``), appending a final chunk if one is sent.

        Raises:
            BlobUploadUnknown, RangeInvalid, SizeInvalid: as for ``append``.
            DigestInvalid: the content does not match ``digest``; the session is discarded.
        """
        async with self._exclusive(upload_id):
            session = await self.get(repository, upload_id)
            if body is not None:
                session = await self._append(session, body, content_range, length, meta)
            await self._commit(session, digest, meta)
        return digest

    async def _commit(self, session: Session, digest: Digest, meta: Metadata) -> None:
        layout = FeedLayout.of(session.repository)
        data = layout.upload_data(session.id)
        target = layout.blob(str(digest))
        exists = await self._trim(session, data)
        source = await self._source(session, data, exists, target, meta)
        try:
            actual = await self._digest_of(session, source, exists, digest.algorithm)
        except ObjectNotFound:  # recovered content collected by GC while it was re-read
            await self._discard(session, "the session's data is missing", meta)
            raise BlobUploadInvalid("the upload session's data is missing; upload the blob again") from None
        if actual != digest:
            await self._discard(session, f"digest mismatch: content is {actual}", meta)
            raise DigestInvalid(
                f"the uploaded content has digest {actual}, not {digest}", detail={"digest": str(digest)}
            )

        placed = source == target  # a crash came after the move: nothing left to move

        async def work(uow: UnitOfWork) -> None:
            nonlocal placed
            # The per-blob lock that garbage collection takes before deleting content: the
            # content found (or moved) here cannot vanish before the link commits.
            await require_feed(
                uow.conn,
                RepositoryName.parse(session.repository),
                share_lock=True,
                lock_blob=(layout.feed, str(digest)),
            )
            if not placed:  # once, even if the transaction is retried
                await self._place(data, exists, target)
                placed = True
            elif await self.storage.stat(target) is None:
                # A retried transaction (the lock was released in between) or crash recovery
                # (content found at its address before the lock): GC may have deleted it since
                # (it deletes under this lock). Never link what is gone.
                raise _ContentGone()
            await uow.emit(
                f"upload:{session.id}",
                UploadCompleted(
                    upload_id=session.id, repository=session.repository, digest=str(digest), size=session.size
                ),
            )
            await link(uow, session.repository, str(digest), session.size)

        try:
            await run_with_retry(self.store, work, projector=project, metadata=meta)
        except _ContentGone:
            await self._discard(session, "the session's data is missing", meta)
            raise BlobUploadInvalid("the upload session's data is missing; upload the blob again") from None
        if not exists:  # a moved data file takes its emptied session folder with it
            await self.storage.delete(layout.upload_prefix(session.id))
        self.hashers.forget(session.id)

    async def _source(self, session: Session, data: str, exists: bool, target: str, meta: Metadata) -> str:
        """Where the session's bytes are: its data, or ``target`` if a crash came between the
        move into place and the commit (verified again by the caller). Raises
        ``BlobUploadInvalid`` (session discarded) when they are nowhere."""
        if session.size == 0 or exists:
            return data
        placed = await self.storage.stat(target)
        if placed is not None and placed.size == session.size:
            return target
        await self._discard(session, "the session's data is missing", meta)
        raise BlobUploadInvalid("the upload session's data is missing; upload the blob again")

    async def _place(self, data: str, exists: bool, target: str) -> None:
        """Put the verified bytes at their content address.

        The data file is moved over ``target`` even if the content is already there: the bytes
        are the same (verified digest), the rename is atomic, and readers keep the file they
        opened; a ``stat`` first would cost a thread hop on every push to save a rename on a
        duplicate. No data file means the empty blob (size 0, never appended to).
        """
        if exists:
            await self.storage.move(data, target)
        else:
            await self.storage.write(target, _empty())

    async def _digest_of(self, session: Session, path: str, exists: bool, algorithm: str) -> Digest:
        if session.size == 0 and not exists:
            hasher: Any = Digest.of(b"", algorithm).new_hasher()
        elif algorithm == "sha256":
            hasher = await self.hashers.at(session.id, session.size, self.storage, path)
        else:
            hasher = Digest.of(b"", algorithm).new_hasher()
            async for chunk in self.storage.read(path):
                hasher.update(chunk)
        return Digest.from_hasher(hasher)

    async def cancel(self, repository: RepositoryName, upload_id: str, meta: Metadata) -> None:
        """Cancel the session (DELETE): ``UploadCancelled``, data removed. Raises ``BlobUploadUnknown``."""
        async with self._exclusive(upload_id):
            session = await self.get(repository, upload_id)
            await self._discard(session, "cancelled by client", meta)

    async def _discard(self, session: Session, reason: str, meta: Metadata) -> None:
        self.hashers.forget(session.id)

        async def work(uow: UnitOfWork) -> None:
            await uow.emit(
                f"upload:{session.id}",
                UploadCancelled(upload_id=session.id, repository=session.repository, reason=reason),
            )

        await run_with_retry(self.store, work, projector=project, metadata=meta)
        await self.storage.delete(FeedLayout.of(session.repository).upload_prefix(session.id))


class _ContentGone(Exception):
    """The content a resumed commit found in place vanished before its lock (rolls back)."""


async def link(uow: UnitOfWork, repository: str, digest: str, size: int) -> None:
    """Emit ``BlobLinked``: links ``digest`` into ``repository``, or refreshes the link's
    ``linked_at`` if it exists — a link older than GC's grace that no manifest references could
    otherwise be collected right after this upload answered 201 (or, after a feed was deleted
    and re-created, by the late ``FeedDeleted`` reaction, which spares links made after it)."""
    await uow.emit(
        f"bloblink:{repository}@{digest}", BlobLinked(repository=repository, digest=digest, size=size)
    )


async def require_feed(
    conn: Connection,
    repository: RepositoryName,
    *,
    share_lock: bool = False,
    lock_blob: tuple[str, str] | None = None,
) -> None:
    """Raise ``NameUnknown`` unless the feed exists (read through api's published view).

    ``share_lock`` holds the feed row until the transaction ends, so a concurrent feed DELETE
    waits for it (or it sees the deletion): nothing is linked into a deleted feed.
    ``lock_blob=(feed, digest)`` then also takes that blob's lock (``gc.lock_blob``) in the same
    round trip, after the feed row.
    """
    lock = " FOR SHARE" if share_lock else ""
    if lock_blob is not None:
        found = await conn.fetchval(
            f"WITH feed AS MATERIALIZED (SELECT 1 AS found FROM api.v_feeds WHERE name = $1{lock})"
            " SELECT found FROM feed, LATERAL (SELECT pg_advisory_xact_lock($2)) AS blob_lock",
            repository.feed,
            blob_lock_key(*lock_blob),
        )
    else:
        found = await conn.fetchval(f"SELECT 1 FROM api.v_feeds WHERE name = $1{lock}", repository.feed)
    if not found:
        raise NameUnknown(
            f"feed {repository.feed!r} does not exist: repository names are FEED/IMAGE and the feed"
            " must be created first (berth feed create FEED)",
            detail={"name": str(repository)},
        )


async def _empty() -> AsyncIterator[bytes]:
    """An empty byte stream (the zero-length blob)."""
    return
    yield b""  # pragma: no cover

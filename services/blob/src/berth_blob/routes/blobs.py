"""Blob endpoints: ``/v2/<name>/blobs/<digest>`` GET, HEAD, DELETE.

OCI distribution spec v1.1, "Pulling blobs" (with ``Range``) and "Deleting Blobs". On the
filesystem the file is sent by the kernel (zero-copy); object stores answer ``307`` to a
presigned URL, or stream through Berth when their store says so (docs/ARCHITECTURE.md, "Stores").
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Send

from berth_blob.deps import get_store, get_stores
from berth_blob.domain.blobs import LinkedBlob, find, unlink
from berth_blob.domain.pullthrough import BlobPullThrough, Streamed
from berth_blob.domain.tee import StreamCut
from berth_blob.routes.ranges import parse_range
from berth_common.auth import Caller
from berth_common.errors import BlobUnknown
from berth_common.http.endpoints import registry_route
from berth_common.http.meta import metadata_of
from berth_common.http.zerocopy import FileRangeResponse
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName
from berth_common.storage import ObjectNotFound

router = APIRouter()
PATH = "/v2/{name:path}/blobs/{digest}"


@registry_route(router, PATH, ["GET", "HEAD"], "pull")
async def get_blob(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """200 (or 206 for a ``Range``) with the blob; 404 BLOB_UNKNOWN; 416 SIZE_INVALID.

    Filesystem stores send the file zero-copy; stores that presign answer ``307`` to a URL the
    client fetches from the store (``Range`` is re-sent there), unless the store is configured to
    stream through Berth. HEAD is answered from the link alone (it never touches object stores).
    A blob the repository does not link comes from the feed's connectors, streamed while it is
    stored (``domain.pullthrough``); their failure is 404/429/503 with the reasons in ``detail``.
    """
    digest = Digest.parse(request.path_params["digest"])
    try:
        blob = await find(await get_store(request), repository, digest)
    except BlobUnknown:
        found = await _pull_through(request, repository, digest, caller)
        if found is None:
            raise
        if not isinstance(found, LinkedBlob):
            return found
        blob = found
    return await _serve(request, blob)


async def _pull_through(
    request: Request, repository: RepositoryName, digest: Digest, caller: Caller
) -> LinkedBlob | Response | None:
    """What the connectors give: the blob now linked, a response, or None (no connectors)."""
    pull: BlobPullThrough = request.app.state.blob_pullthrough
    meta = metadata_of(request, caller)
    if request.method == "HEAD":
        found = await pull.head(repository, digest, meta)
        if not isinstance(found, int):
            return found
        headers = {"Docker-Content-Digest": str(digest), "Accept-Ranges": "bytes", "ETag": f'"{digest}"'}
        if found >= 0:
            headers["Content-Length"] = str(found)
        return Response(status_code=200, headers=headers, media_type="application/octet-stream")
    header = request.headers.get("range")
    got = await pull.get(repository, digest, bool(header), lambda size: parse_range(header, size), meta)
    if isinstance(got, Streamed):
        return FetchResponse(
            got.body, status_code=got.status, headers=got.headers, media_type="application/octet-stream"
        )
    return got


class FetchResponse(StreamingResponse):
    """A response fed by an upstream fetch in flight (``domain.tee``). When the fetch fails
    (``StreamCut``: upstream error, short body, digest mismatch) the response is left
    incomplete on purpose: the server closes the connection, and the client, short of the
    declared length, fails rather than taking wrong bytes for the blob."""

    async def stream_response(self, send: Send) -> None:
        """Start, stream, and end the response — unless the fetch fails first."""
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except StreamCut:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _serve(request: Request, blob: LinkedBlob) -> Response:
    """The blob from its location: zero-copy, a presigned redirect, or streamed."""
    stores = await get_stores(request)
    storage, path = stores.driver(blob.location), blob.location.blob(blob.digest)
    headers = {
        "Docker-Content-Digest": blob.digest,
        "Accept-Ranges": "bytes",
        "ETag": f'"{blob.digest}"',
        "Cache-Control": "max-age=31536000",
    }
    wanted = parse_range(request.headers.get("range"), blob.size)
    offset, count, status = 0, blob.size, 200
    if wanted is not None:
        offset, count = wanted
        status = 206
        headers["Content-Range"] = f"bytes {offset}-{offset + count - 1}/{blob.size}"
    local = storage.local_path(path)
    if local is not None:
        if not local.exists():
            raise BlobUnknown(f"blob {blob.digest} is missing from storage")
        return FileRangeResponse(local, offset=offset, count=count, status_code=status, headers=headers)
    headers["Content-Length"] = str(count)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    if stores.redirects(blob.location):
        url = await storage.url_for(path, external_host=request.headers.get("host"))
        if url is not None:
            del headers["Content-Length"]
            headers.pop("Content-Range", None)
            return RedirectResponse(url, status_code=307, headers=headers)
    body = await _opened(storage.read(path, offset, count), blob.digest)
    return StreamingResponse(body, status_code=status, headers=headers, media_type="application/octet-stream")


async def _opened(chunks: AsyncIterator[bytes], digest: str) -> AsyncIterator[bytes]:
    """``chunks`` with its first chunk already read, so a missing object is a 404 before any
    header is sent (not a broken 200). Raises ``BlobUnknown``."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    except ObjectNotFound:
        raise BlobUnknown(f"blob {digest} is missing from storage") from None

    async def rest() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return rest()


@registry_route(router, PATH, ["DELETE"], "delete")
async def delete_blob(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """202: the repository no longer serves the blob (content is reclaimed by GC)."""
    digest = request.path_params["digest"]
    await unlink(await get_store(request), repository, Digest.parse(digest), metadata_of(request, caller))
    return Response(status_code=202, headers={"Docker-Content-Digest": digest})

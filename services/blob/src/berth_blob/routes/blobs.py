"""Blob endpoints: ``/v2/<name>/blobs/<digest>`` GET, HEAD, DELETE.

OCI distribution spec v1.1, "Pulling blobs" (with ``Range``) and "Deleting Blobs". On the
filesystem the file is sent by the kernel (zero-copy); object stores answer ``307`` to a
presigned URL, or stream through Berth when their store says so (docs/ARCHITECTURE.md, "Stores").
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from berth_blob.deps import get_store, get_stores
from berth_blob.domain.blobs import find, unlink
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
    """
    stores = await get_stores(request)
    blob = await find(await get_store(request), repository, Digest.parse(request.path_params["digest"]))
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

"""Blob endpoints: ``/v2/<name>/blobs/<digest>`` GET, HEAD, DELETE.

OCI distribution spec v1.1, "Pulling blobs" (with ``Range``) and "Deleting Blobs". On the
filesystem the file is sent by the kernel (zero-copy); drivers that can presign answer ``307``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from berth_blob.deps import get_storage, get_store
from berth_blob.domain.blobs import find, unlink
from berth_blob.domain.layout import FeedLayout
from berth_blob.routes.ranges import parse_range
from berth_common.auth import Caller
from berth_common.errors import BlobUnknown
from berth_common.http.endpoints import registry_route
from berth_common.http.meta import metadata_of
from berth_common.http.zerocopy import FileRangeResponse
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName

router = APIRouter()
PATH = "/v2/{name:path}/blobs/{digest}"


@registry_route(router, PATH, ["GET", "HEAD"], "pull")
async def get_blob(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """200 (or 206 for a ``Range``) with the blob; 404 BLOB_UNKNOWN; 416 SIZE_INVALID."""
    storage = await get_storage(request)
    blob = await find(await get_store(request), repository, Digest.parse(request.path_params["digest"]))
    path = FeedLayout.of(str(repository)).blob(blob.digest)
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
    url = await storage.url_for(path, external_host=request.headers.get("host"))
    if url is not None and wanted is None:
        return RedirectResponse(url, status_code=307, headers=headers)
    headers["Content-Length"] = str(count)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(
        storage.read(path, offset, count),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


@registry_route(router, PATH, ["DELETE"], "delete")
async def delete_blob(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """202: the repository no longer serves the blob (content is reclaimed by GC)."""
    digest = request.path_params["digest"]
    await unlink(await get_store(request), repository, Digest.parse(digest), metadata_of(request, caller))
    return Response(status_code=202, headers={"Docker-Content-Digest": digest})

"""Upload endpoints: ``/v2/<name>/blobs/uploads/[<uuid>]`` POST, PATCH, PUT, GET, DELETE.

OCI distribution spec v1.1, "Pushing blobs": monolithic (POST ``?digest=``), POST-PUT, chunked
(POST, PATCH…, PUT), "Mounting a blob from another repository" (POST ``?mount=&from=``), and
upload status (GET) and cancel (DELETE).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from berth_blob.deps import get_store, get_uploads
from berth_blob.domain.blobs import mount
from berth_blob.domain.uploads import Session, Uploads, range_header
from berth_blob.routes.ranges import parse_chunk, parse_length
from berth_common.auth import Caller
from berth_common.errors import DigestInvalid, NameInvalid, RegistryError
from berth_common.http.endpoints import registry_route, resolve_name
from berth_common.http.meta import metadata_of
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName

router = APIRouter()
START = "/v2/{name:path}/blobs/uploads/"
SESSION = "/v2/{name:path}/blobs/uploads/{upload_id}"


def _session_headers(repository: RepositoryName, session: Session) -> dict[str, str]:
    return {
        "Location": f"/v2/{repository.url_name}/blobs/uploads/{session.id}",
        "Range": range_header(session.size),
        "Docker-Upload-UUID": session.id,
    }


def _created(repository: RepositoryName, digest: Digest | str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{repository.url_name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
        },
    )


async def _mount_source(request: Request, source: str | None) -> str | None:
    """The repository a mount's ``from`` names (mirror mode included), or None if invalid."""
    if not source:
        return None
    try:
        return str(await resolve_name(request, source))
    except NameInvalid:
        return None


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    return chunked or (length is not None and length != "0")


@registry_route(router, START.rstrip("/"), ["POST"], "push")
@registry_route(router, START, ["POST"], "push")
async def start_upload(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """201 for a mount or a monolithic upload; else 202 with a new session's ``Location``."""
    store, uploads = await get_store(request), await get_uploads(request)
    meta = metadata_of(request, caller)
    params = request.query_params
    if "mount" in params:
        digest = Digest.parse(params["mount"])
        source = params.get("from")
        origin = await _mount_source(request, source)
        if (
            origin
            and caller.may(source or "", "pull")
            and await mount(store, uploads, repository, digest, origin, meta)
        ):
            return _created(repository, digest)
    if "digest" in params and "mount" not in params:
        digest = Digest.parse(params["digest"])
        length = parse_length(request.headers.get("content-length"))
        await uploads.upload_whole(repository, digest, request.stream(), length, meta)
        return _created(repository, digest)
    session = await uploads.start(repository, meta)
    return Response(status_code=202, headers=_session_headers(repository, session))


async def _chunk(
    request: Request, uploads: Uploads, repository: RepositoryName
) -> tuple[tuple[int, int] | None, int | None]:
    """The request's chunk ``(range, length)`` (``routes.ranges.parse_chunk``), checked before the
    session is touched. A refusal carries the session's ``Range`` (and an unknown session is
    still 404 BLOB_UPLOAD_UNKNOWN first)."""
    try:
        return parse_chunk(request.headers.get("content-range"), request.headers.get("content-length"))
    except RegistryError as exc:
        session = await uploads.get(repository, request.path_params["upload_id"])
        exc.headers["Range"] = range_header(session.size)
        raise


@registry_route(router, SESSION, ["PATCH"], "push")
async def patch_upload(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """202 with the cumulative ``Range``; 416 for a malformed or out-of-order ``Content-Range``,
    400 SIZE_INVALID when it disagrees with ``Content-Length`` (nothing appended)."""
    uploads = await get_uploads(request)
    content_range, length = await _chunk(request, uploads, repository)
    session = await uploads.append(
        repository,
        request.path_params["upload_id"],
        request.stream(),
        content_range,
        length,
        metadata_of(request, caller),
    )
    return Response(status_code=202, headers=_session_headers(repository, session))


@registry_route(router, SESSION, ["PUT"], "push")
async def put_upload(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """201 when ``?digest=`` matches the content; 400 DIGEST_INVALID (session discarded) if not.

    A final chunk's ``Content-Range`` is checked as a PATCH's (416 / 400, session unchanged).
    """
    uploads, upload_id = await get_uploads(request), request.path_params["upload_id"]
    raw = request.query_params.get("digest")
    if raw is None:
        raise DigestInvalid("the digest query parameter is required to complete an upload")
    digest = Digest.parse(raw)
    content_range, length = await _chunk(request, uploads, repository)
    body = request.stream() if _has_body(request) else None
    await uploads.complete(
        repository,
        upload_id,
        digest,
        body,
        content_range,
        length,
        metadata_of(request, caller),
    )
    return _created(repository, digest)


@registry_route(router, SESSION, ["GET"], "push")
async def upload_status(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """204 with the session's ``Range``; 404 BLOB_UPLOAD_UNKNOWN."""
    uploads = await get_uploads(request)
    session = await uploads.get(repository, request.path_params["upload_id"])
    return Response(status_code=204, headers=_session_headers(repository, session))


@registry_route(router, SESSION, ["DELETE"], "push")
async def cancel_upload(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """204: the session is cancelled and its data removed; 404 BLOB_UPLOAD_UNKNOWN."""
    uploads = await get_uploads(request)
    await uploads.cancel(repository, request.path_params["upload_id"], metadata_of(request, caller))
    return Response(status_code=204)

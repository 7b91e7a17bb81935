"""Manifest endpoints: ``/v2/<name>/manifests/<reference>`` GET, HEAD, PUT, DELETE.

OCI distribution spec v1.1, "Pulling manifests", "Pushing Manifests", "Deleting Manifests".
A GET by tag is one indexed lookup (tags ⋈ manifests) and never touches storage; the bytes
served are exactly the bytes pushed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from berth_api.deps import get_pool, get_store
from berth_api.domain.cached import lookup
from berth_api.domain.feeds import require_feed
from berth_api.domain.manifests import delete_manifest, delete_tag, put_manifest
from berth_api.domain.pullthrough import PullThrough
from berth_common.auth import Caller
from berth_common.errors import ManifestInvalid, ManifestUnknown, Unsupported
from berth_common.http.endpoints import registry_route
from berth_common.http.meta import metadata_of
from berth_common.oci.accept import acceptable_for
from berth_common.oci.digest import Digest
from berth_common.oci.reference import RepositoryName, check_tag, find_reference, parse_reference

router = APIRouter()
PATH = "/v2/{name:path}/manifests/{reference}"
MAX_TAGS = 100
"""Most ``tag`` parameters one manifest PUT may carry (spec main: SHOULD support at least 10)."""


class ManifestTooLarge(ManifestInvalid):
    """413 MANIFEST_INVALID: the manifest is larger than the configured limit."""

    status = 413


class TooManyTags(Unsupported):
    """414 UNSUPPORTED: more than ``MAX_TAGS`` ``tag`` parameters (spec main: a registry MAY 414)."""

    status = 414


@registry_route(router, PATH, ["GET", "HEAD"], "pull")
async def get_manifest(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """200 with the manifest bytes, ``Content-Type``, ``Docker-Content-Digest``; HEAD: headers only.

    A manifest the feed lacks (or a cached tag past its TTL) is asked of the feed's connectors
    (``domain.pullthrough``). Raises ``ManifestUnknown`` (404) when absent, when the reference
    is neither a tag nor a digest (spec v1.1.1, "Pulling manifests"), or when not acceptable per
    ``Accept``; ``Unavailable`` / ``TooManyRequests`` when the connectors fail and nothing is
    cached.
    """
    pool, reference = await get_pool(request), request.path_params["reference"]
    ref = find_reference(reference)
    head = request.method == "HEAD"
    row = None if ref is None else await lookup(pool, repository, ref, head)
    if ref is not None and (row is None or row["origin"] is not None):  # connectors may have it
        pull: PullThrough = request.app.state.api_pullthrough
        row = await pull.manifest(repository, ref, row, metadata_of(request, caller))
    if ref is None or row is None:
        async with pool.acquire() as conn:
            await require_feed(conn, repository)
        raise ManifestUnknown(
            f"manifest {reference} is not in repository {repository}",
            detail={"name": str(repository), "reference": reference},
        )
    accept = request.headers.getlist("accept")
    if not acceptable_for(accept, row["media_type"], by_digest=isinstance(ref, Digest)):
        raise ManifestUnknown(
            f"manifest {reference} has media type {row['media_type']},"
            " which the request's Accept header does not allow"
        )
    headers = {
        "Docker-Content-Digest": row["digest"],
        "ETag": f'"{row["digest"]}"',
        "Content-Length": str(row["size"]),
        "Docker-Distribution-API-Version": "registry/2.0",
    }
    return Response(content=b"" if head else row["body"], headers=headers, media_type=row["media_type"])


@registry_route(router, PATH, ["PUT"], "push")
async def put(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """201 with ``Location``, ``Docker-Content-Digest`` (and ``OCI-Subject`` for referrers).

    ``?tag=a&tag=b`` (spec main, "Pushing Manifests") points those tags at the manifest too, in
    the same transaction (all or none, Overwrite needed to move one), and the answer has one
    ``OCI-Tag`` header per tag set. 400 MANIFEST_INVALID for an invalid tag, 414 UNSUPPORTED
    for more than ``MAX_TAGS``.
    """
    store, ref = await get_store(request), parse_reference(request.path_params["reference"])
    tags = _tags(request, ref)
    limit = request.app.state.resources.settings.uploads.max_manifest_bytes
    body = await _read_limited(request, limit)
    result = await put_manifest(
        store,
        repository,
        ref,
        body,
        request.headers.get("content-type"),
        metadata_of(request, caller),
        may_overwrite=caller.may(repository.url_name, "overwrite"),
        tags=tags,
    )
    headers = {
        "Location": f"/v2/{repository.url_name}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
    }
    if result.subject:
        headers["OCI-Subject"] = result.subject
    response = Response(status_code=201, headers=headers)
    if "tag" in request.query_params:
        for tag in tags:
            response.headers.append("OCI-Tag", tag)
    return response


def _tags(request: Request, ref: str | Digest) -> list[str]:
    """Every tag the PUT sets: the path's (a push by tag), then each ``tag`` parameter, once."""
    extra = request.query_params.getlist("tag")
    if len(extra) > MAX_TAGS:
        raise TooManyTags(f"{len(extra)} tag parameters; at most {MAX_TAGS} per request")
    named = ([ref] if isinstance(ref, str) else []) + [check_tag(t) for t in extra]
    return list(dict.fromkeys(named))


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ManifestTooLarge(f"manifest larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ManifestTooLarge(f"manifest larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@registry_route(router, PATH, ["DELETE"], "delete")
async def delete(request: Request, repository: RepositoryName, caller: Caller) -> Response:
    """202: by digest deletes the manifest and its tags; by tag deletes only the tag.

    404 MANIFEST_UNKNOWN for an unknown one, or a reference that is neither a tag nor a digest.
    """
    store, reference = await get_store(request), request.path_params["reference"]
    ref, meta = find_reference(reference), metadata_of(request, caller)
    if ref is None:
        async with store.pool.acquire() as conn:
            await require_feed(conn, repository)
        raise ManifestUnknown(f"manifest {reference[:80]!r} is not in repository {repository}")
    if isinstance(ref, Digest):
        await delete_manifest(store, repository, ref, meta)
    else:
        await delete_tag(store, repository, ref, meta)
    return Response(status_code=202)

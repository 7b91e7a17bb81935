"""Listings: tags of a repository, the catalogue, and referrers of a manifest.

OCI distribution spec v1.1, "Listing Tags" (``n``/``last`` pagination with a ``Link`` header)
and "Listing Referrers"; Distribution's ``/v2/_catalog``. Every listing is one indexed query on
the projections (``COLLATE "C"`` keys, so the order is lexical), never a storage walk.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from berth_api.deps import Pool, Repository
from berth_api.domain.manifests import require_feed
from berth_common.auth import Caller, require
from berth_common.errors import NameUnknown, PaginationNumberInvalid
from berth_common.oci import mediatypes
from berth_common.oci.digest import Digest

router = APIRouter()
MAX_PAGE = 10_000


def _page_size(request: Request) -> int | None:
    raw = request.query_params.get("n")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise PaginationNumberInvalid(f"n must be a non-negative integer, not {raw[:20]!r}")
    return min(int(raw), MAX_PAGE)


def _page(items: list[str], n: int | None, path: str,
          extra: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    if n is None or len(items) <= n:
        return items, {}
    if n == 0:
        return [], {}
    items = items[:n]
    query = urlencode({**extra, "n": n, "last": items[-1]})
    return items, {"Link": f'<{path}?{query}>; rel="next"'}


@router.get("/v2/{name:path}/tags/list", include_in_schema=False)
async def list_tags(request: Request, repository: Repository, pool: Pool,
                    caller: Caller = require("pull")) -> JSONResponse:
    """200 ``{"name": ..., "tags": [...]}``; 404 NAME_UNKNOWN for an unknown repository."""
    n = _page_size(request)
    last = request.query_params.get("last", "")
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM api.repositories WHERE name = $1", str(repository)):
            await require_feed(conn, repository)
            raise NameUnknown(f"repository {repository} is not known", detail={"name": str(repository)})
        rows = await conn.fetch(
            "SELECT tag FROM api.tags WHERE repository = $1 AND tag > $2 ORDER BY tag LIMIT $3",
            str(repository), last, (n if n is not None else MAX_PAGE * 100) + 1,
        )
    tags, headers = _page([r["tag"] for r in rows], n, f"/v2/{repository}/tags/list", {})
    return JSONResponse({"name": str(repository), "tags": tags}, headers=headers)


@router.get("/v2/_catalog", include_in_schema=False)
async def catalog(request: Request, pool: Pool, caller: Caller = require("pull")) -> JSONResponse:
    """200 ``{"repositories": [...]}`` in lexical order with ``n``/``last`` pagination.

    Only repositories of feeds the caller may view (``Caller.catalog_feeds``) are listed.
    """
    n = _page_size(request)
    last = request.query_params.get("last", "")
    feeds = caller.catalog_feeds()
    rows = await pool.fetch(
        "SELECT name FROM api.repositories WHERE name > $1"
        " AND ($3::text[] IS NULL OR feed = ANY($3::text[])) ORDER BY name LIMIT $2",
        last, (n if n is not None else MAX_PAGE * 100) + 1, None if feeds is None else sorted(feeds),
    )
    names, headers = _page([r["name"] for r in rows], n, "/v2/_catalog", {})
    return JSONResponse({"repositories": names}, headers=headers)


@router.get("/v2/{name:path}/referrers/{digest}", include_in_schema=False)
async def referrers(request: Request, repository: Repository, digest: str, pool: Pool,
                    caller: Caller = require("pull")) -> Response:
    """200 with an OCI index of the manifests whose ``subject`` is ``digest``.

    ``?artifactType=`` filters (answered with ``OCI-Filters-Applied: artifactType``). An unknown
    subject gives an empty index. Raises ``DigestInvalid`` and ``NameUnknown`` (unknown feed).
    """
    subject = Digest.parse(digest)
    artifact_type = request.query_params.get("artifactType")
    async with pool.acquire() as conn:
        await require_feed(conn, repository)
        rows = await conn.fetch(
            "SELECT digest, media_type, size, artifact_type, annotations FROM api.manifests"
            " WHERE repository = $1 AND subject = $2 AND ($3::text IS NULL OR artifact_type = $3)"
            " ORDER BY digest", str(repository), str(subject), artifact_type,
        )
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
             "manifests": [_descriptor(r) for r in rows]}
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return JSONResponse(index, headers=headers, media_type=mediatypes.OCI_INDEX)


def _descriptor(row: Any) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": row["media_type"], "digest": row["digest"], "size": row["size"]}
    if row["artifact_type"]:
        desc["artifactType"] = row["artifact_type"]
    if row["annotations"]:
        desc["annotations"] = row["annotations"]
    return desc

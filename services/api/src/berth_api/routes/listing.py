"""Listings: tags of a repository, the catalogue, and referrers of a manifest.

OCI distribution spec v1.1, "Listing Tags" (``n``/``last`` pagination with a ``Link`` header)
and "Listing Referrers"; Distribution's ``/v2/_catalog``. Every listing is one indexed query on
the projections (``COLLATE "C"`` keys, so the order is lexical), never a storage walk.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from berth_api.deps import Pool, Repository
from berth_api.domain.feeds import require_feed
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


# One query per page: PostgreSQL builds the JSON array of the page itself (``json_agg``; the
# subquery yields the keys in their C-collation order), so no per-row Python objects are made;
# it also returns the page's last key and whether any key follows it (one index probe).
_PAGE_SQL = """
    SELECT page.items, page.last, EXISTS ({follows} > page.last) AS more FROM (
        SELECT coalesce(json_agg(k), '[]')::text AS items, max(k) AS last FROM ({source}) s
    ) page
"""
_TAGS_SQL = (
    "SELECT (SELECT true FROM api.repositories WHERE name = $2) AS known, p.* FROM ("
    + _PAGE_SQL.format(
        source="SELECT tag AS k FROM api.tags WHERE repository = $2 AND tag > $3 ORDER BY tag LIMIT $1",
        follows="SELECT 1 FROM api.tags WHERE repository = $2 AND tag",
    )
    + ") p"
)
_CATALOG_SQL = _PAGE_SQL.format(
    source="SELECT name AS k FROM api.repositories WHERE name > $2"
    " AND ($3::text[] IS NULL OR feed = ANY($3::text[])) ORDER BY name LIMIT $1",
    follows="SELECT 1 FROM api.repositories WHERE ($3::text[] IS NULL OR feed = ANY($3::text[])) AND name",
)


def _limit(n: int | None) -> int:
    """Rows in a page: ``n``, or (no ``n``) everything up to a safety bound."""
    return n if n is not None else MAX_PAGE * 100


def _link(row: Any, n: int | None, path: str) -> dict[str, str]:
    """The spec's ``Link: <path?n=&last=>; rel="next"`` when more entries follow a page of ``n``."""
    if not n or not row["more"]:
        return {}
    return {"Link": f'<{path}?{urlencode({"n": n, "last": row["last"]})}>; rel="next"'}


def _json(prefix: dict[str, str], key: str, items: str, headers: dict[str, str]) -> Response:
    """``{**prefix, key: <items>}`` with ``items`` (JSON array text from PostgreSQL) spliced in."""
    head = json.dumps(prefix, separators=(",", ":"))[:-1]
    body = f"{head}{',' if prefix else ''}{json.dumps(key)}:{items}}}"
    return Response(body.encode(), headers=headers, media_type="application/json")


@router.get("/v2/{name:path}/tags/list", include_in_schema=False)
async def list_tags(
    request: Request, repository: Repository, pool: Pool, caller: Caller = require("pull")
) -> Response:
    """200 ``{"name": ..., "tags": [...]}``; 404 NAME_UNKNOWN for an unknown repository."""
    n = _page_size(request)
    last = request.query_params.get("last", "")
    name = str(repository)
    row = await pool.fetchrow(_TAGS_SQL, _limit(n), name, last)
    assert row is not None  # an aggregate query always returns one row
    if not row["known"]:
        async with pool.acquire() as conn:
            await require_feed(conn, repository)
        raise NameUnknown(f"repository {repository} is not known", detail={"name": name})
    link = _link(row, n, f"/v2/{repository.url_name}/tags/list")
    return _json({"name": repository.url_name}, "tags", row["items"], link)


@router.get("/v2/_catalog", include_in_schema=False)
async def catalog(request: Request, pool: Pool, caller: Caller = require("pull")) -> Response:
    """200 ``{"repositories": [...]}`` in lexical order with ``n``/``last`` pagination.

    Only repositories of feeds the caller may view (``Caller.catalog_feeds``) are listed.
    """
    n = _page_size(request)
    last = request.query_params.get("last", "")
    feeds = caller.catalog_feeds()
    row = await pool.fetchrow(_CATALOG_SQL, _limit(n), last, None if feeds is None else sorted(feeds))
    assert row is not None  # an aggregate query always returns one row
    return _json({}, "repositories", row["items"], _link(row, n, "/v2/_catalog"))


@router.get("/v2/{name:path}/referrers/{digest}", include_in_schema=False)
async def referrers(
    request: Request, repository: Repository, digest: str, pool: Pool, caller: Caller = require("pull")
) -> Response:
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
            " ORDER BY digest",
            str(repository),
            str(subject),
            artifact_type,
        )
    index = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [_descriptor(r) for r in rows],
    }
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return JSONResponse(index, headers=headers, media_type=mediatypes.OCI_INDEX)


def _descriptor(row: Any) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": row["media_type"], "digest": row["digest"], "size": row["size"]}
    if row["artifact_type"]:
        desc["artifactType"] = row["artifact_type"]
    if row["annotations"]:
        desc["annotations"] = row["annotations"]
    return desc

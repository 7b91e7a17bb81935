"""The read-only browse API behind the web UI: feeds, their repositories, a repository's tags.

``GET /api/feeds`` and ``GET /api/feeds/{feed}`` (sizes, image counts, last push),
``GET /api/feeds/{feed}/repositories`` and ``GET /api/repositories/{name}/tags``: each a JSON
array paginated by key (``routes/paging.py``: ``n``, ``last``, ``before``, ``q``; ``Link`` and
``X-Total-Count`` headers). Authorised by View on the feed (``authorize_view``): a token for
``registry:catalog:*`` carries the feeds its holder may view, one for
``repository:<name>:pull`` a repository; Admin sees everything. Sizes come from the blob
service's published view ``blob.v_repository_blobs`` (a feed's size counts each blob once:
each feed has its own blob store).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from berth_api.deps import Pool
from berth_api.domain import images
from berth_api.routes.paging import PageQuery, keys_page
from berth_common.auth import authorize_view
from berth_common.errors import NameUnknown
from berth_common.oci.reference import RepositoryName

router = APIRouter(tags=["browse"])


class FeedOut(BaseModel):
    """A feed as listed: ``size`` in bytes (its blobs, each once), ``last_pushed`` of any tag,
    ``store`` the name of the configured store holding its blobs."""

    name: str
    description: str
    public: bool
    allow_sparse: bool
    store: str = "default"
    created_at: datetime
    repositories: int
    size: int = 0
    last_pushed: datetime | None = None


class RepositoryOut(BaseModel):
    """A repository of a feed: ``image`` is its name without the feed; ``size`` in bytes."""

    name: str
    image: str
    tags: int
    size: int
    last_pushed: datetime | None


class TagOut(BaseModel):
    """A tag: the manifest it points at, the image's ``size`` in bytes (config and layers; for an
    index, all its platforms' images), ``platforms`` of an index, when and by whom it was pushed;
    ``origin``: the upstream repository a connector cached it from (``None``: pushed here)."""

    tag: str
    digest: str
    media_type: str
    artifact_type: str | None
    size: int | None
    platforms: list[str]
    pushed_at: datetime
    pushed_by: str | None
    origin: str | None = None


# Everything under a feed's name in C-collation order: from "<feed>/" up to "<feed>0" ('0'
# follows '/'), an index range scan of each table's repository key.
_IN_FEED = "{col} > {feed} || '/' AND {col} < {feed} || '0'"
_FEEDS_SQL = f"""
    SELECT f.name, f.description, f.public, f.allow_sparse, f.created_at,
        coalesce(f.storage->>'store', 'default') AS store,
        (SELECT count(*) FROM api.repositories r WHERE r.feed = f.name) AS repositories,
        (SELECT coalesce(sum(d.size), 0) FROM (SELECT DISTINCT b.digest, b.size
            FROM blob.v_repository_blobs b WHERE {_IN_FEED.format(col="b.repository", feed="f.name")}
            AND (b.incarnation IS NULL OR b.incarnation = f.incarnation)) d
        )::bigint AS size,
        (SELECT max(t.updated_at) FROM api.tags t
            WHERE {_IN_FEED.format(col="t.repository", feed="f.name")}) AS last_pushed
    FROM api.feeds f WHERE f.name = ANY($1::text[]) ORDER BY f.name
"""
_REPOSITORIES_SQL = """
    SELECT r.name, t.tags, t.last_pushed,
        (SELECT coalesce(sum(b.size), 0) FROM blob.v_repository_blobs b
            WHERE b.repository = r.name AND (b.incarnation IS NULL OR b.incarnation = f.incarnation)
        )::bigint AS size
    FROM api.repositories r JOIN api.feeds f ON f.name = r.feed
    CROSS JOIN LATERAL (SELECT count(*) AS tags, max(updated_at) AS last_pushed
        FROM api.tags WHERE repository = r.name) t
    WHERE r.name = ANY($1::text[]) ORDER BY r.name
"""
_TAGS_SQL = """
    SELECT t.tag, t.digest, t.updated_at, t.updated_by, t.origin, m.media_type, m.artifact_type, m.body
    FROM api.tags t JOIN api.manifests m ON m.repository = t.repository AND m.digest = t.digest
    WHERE t.repository = $1 AND t.tag = ANY($2::text[]) ORDER BY t.tag
"""


async def feed_rows(pool: Pool, names: list[str]) -> list[FeedOut]:
    """The listing rows of feeds ``names`` (those that exist), by name."""
    return [FeedOut(**dict(r)) for r in await pool.fetch(_FEEDS_SQL, names)]


@router.get("/api/feeds", response_model=list[FeedOut])
async def list_feeds(request: Request, pool: Pool) -> JSONResponse:
    """Feeds the caller may view (Admin: all), a page at a time (``n``, ``last``, ``before``, ``q``)."""
    caller = await authorize_view(request)
    visible = caller.viewable_feeds()
    page = PageQuery.of(request)
    where, args = ("true", []) if visible is None else ("name = ANY($1::text[])", [sorted(visible)])
    async with pool.acquire() as conn:
        found = await keys_page(conn, "api.feeds", "name", where, args, page)
    rows = await feed_rows(pool, found.keys)
    return _json(rows, found.headers(request, page))


@router.get("/api/feeds/{feed}", response_model=FeedOut)
async def get_feed(feed: str, request: Request, pool: Pool) -> FeedOut:
    """One feed. 404 NAME_UNKNOWN if absent (after the View check)."""
    await authorize_view(request, feed=feed)
    rows = await feed_rows(pool, [feed])
    if not rows:
        raise NameUnknown(f"feed {feed!r} does not exist")
    return rows[0]


@router.get("/api/feeds/{feed}/repositories", response_model=list[RepositoryOut])
async def list_repositories(feed: str, request: Request, pool: Pool) -> JSONResponse:
    """A feed's repositories with tag counts, sizes and last push, a page at a time."""
    await authorize_view(request, feed=feed)
    page = PageQuery.of(request)
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM api.feeds WHERE name = $1", feed):
            raise NameUnknown(f"feed {feed!r} does not exist")
        found = await keys_page(conn, "api.repositories", "name", "feed = $1", [feed], page)
        rows = await conn.fetch(_REPOSITORIES_SQL, found.keys)
    items = [RepositoryOut(image=r["name"].split("/", 1)[1], **dict(r)) for r in rows]
    return _json(items, found.headers(request, page))


@router.get("/api/repositories/{name:path}/tags", response_model=list[TagOut])
async def list_tags(name: str, request: Request, pool: Pool) -> JSONResponse:
    """A repository's tags, a page at a time; ``?digest=`` lists only the tags pointing at it."""
    repository = str(RepositoryName.parse(name))
    await authorize_view(request, repository=repository)
    page = PageQuery.of(request)
    digest = request.query_params.get("digest")
    where, args = ("repository = $1", [repository])
    if digest:
        where, args = ("repository = $1 AND digest = $2", [repository, digest])
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM api.repositories WHERE name = $1", repository):
            raise NameUnknown(f"repository {repository} is not known", detail={"name": repository})
        found = await keys_page(conn, "api.tags", "tag", where, args, page)
        rows = await conn.fetch(_TAGS_SQL, repository, found.keys)
        items = await _tag_items(conn, repository, rows)
    return _json(items, found.headers(request, page))


async def _tag_items(conn: Any, repository: str, rows: list[Any]) -> list[TagOut]:
    """Tag rows with sizes and platforms; an index's size adds up its children's images."""
    parsed = {r["digest"]: images.parse(r["body"]) for r in rows}
    wanted = {c.get("digest") for m in parsed.values() for c in images.children(m)}
    child_sizes: dict[str, int | None] = {}
    if wanted:
        found = await conn.fetch(
            "SELECT digest, body FROM api.manifests WHERE repository = $1 AND digest = ANY($2::text[])",
            repository,
            sorted(d for d in wanted if isinstance(d, str)),
        )
        child_sizes = {r["digest"]: images.image_size(images.parse(r["body"])) for r in found}
    return [_tag_out(r, parsed[r["digest"]], child_sizes) for r in rows]


def _tag_out(row: Any, manifest: dict[str, Any], child_sizes: dict[str, int | None]) -> TagOut:
    size = images.image_size(manifest)
    if size is None:  # an index: the images it names that this repository holds
        sizes = [child_sizes.get(str(c.get("digest"))) for c in images.children(manifest)]
        size = sum(s for s in sizes if s is not None)
    return TagOut(
        tag=row["tag"],
        digest=row["digest"],
        media_type=row["media_type"],
        artifact_type=row["artifact_type"],
        size=size,
        platforms=images.platforms(manifest),
        pushed_at=row["updated_at"],
        pushed_by=row["updated_by"],
        origin=row["origin"],
    )


def _json(items: list[Any], headers: dict[str, str]) -> JSONResponse:
    return JSONResponse([i.model_dump(mode="json") for i in items], headers=headers)

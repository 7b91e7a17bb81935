"""The admin JSON API for feeds (``/api/feeds``), documented in the OpenAPI schema (``/api/docs``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from berth_api.deps import Pool, Store
from berth_api.domain.feeds import create_feed, delete_feed, update_feed
from berth_common.auth import Caller, require
from berth_common.errors import NameUnknown
from berth_common.http.meta import metadata_of

router = APIRouter(prefix="/api/feeds", tags=["feeds"])


class FeedIn(BaseModel):
    """A feed to create: ``name`` becomes the first path component of its repositories."""

    name: str = Field(min_length=1, max_length=64, examples=["dmc"])
    description: str = Field(default="", max_length=1000)
    public: bool = Field(default=False, description="anonymous users may pull")
    allow_sparse: bool = Field(
        default=False, description="manifests may reference blobs and child manifests that were not pushed"
    )


class FeedPatch(BaseModel):
    """Settings of a feed to change; absent fields stay as they are."""

    description: str | None = Field(default=None, max_length=1000)
    public: bool | None = None
    allow_sparse: bool | None = None


class FeedOut(BaseModel):
    """A feed as listed."""

    name: str
    description: str
    public: bool
    allow_sparse: bool
    created_at: datetime
    repositories: int


_SELECT = (
    "SELECT f.name, f.description, f.public, f.allow_sparse, f.created_at,"
    " (SELECT count(*) FROM api.repositories r WHERE r.feed = f.name) AS repositories"
    " FROM api.feeds f"
)


@router.post("", status_code=201, response_model=FeedOut, responses={409: {"description": "exists"}})
async def post_feed(
    body: FeedIn, request: Request, store: Store, pool: Pool, caller: Caller = require("*")
) -> FeedOut:
    """Create a feed. 400 NAME_INVALID for a bad name, 409 CONFLICT if it exists."""
    await create_feed(
        store,
        body.name,
        description=body.description,
        public=body.public,
        allow_sparse=body.allow_sparse,
        metadata=metadata_of(request, caller),
    )
    return await get_feed(body.name, pool)


@router.get("", response_model=list[FeedOut])
async def list_feeds(pool: Pool, caller: Caller = require("*")) -> list[FeedOut]:
    """All feeds, by name."""
    rows = await pool.fetch(_SELECT + " ORDER BY f.name")
    return [FeedOut(**dict(r)) for r in rows]


@router.get("/{name}", response_model=FeedOut)
async def get_feed(name: str, pool: Pool, caller: Caller = require("*")) -> FeedOut:
    """One feed. 404 NAME_UNKNOWN if absent."""
    row = await pool.fetchrow(_SELECT + " WHERE f.name = $1", name)
    if row is None:
        raise NameUnknown(f"feed {name!r} does not exist")
    return FeedOut(**dict(row))


@router.patch("/{name}", response_model=FeedOut)
async def patch_feed(
    name: str, body: FeedPatch, request: Request, store: Store, pool: Pool, caller: Caller = require("*")
) -> FeedOut:
    """Change a feed's description, public flag or sparse option. 404 NAME_UNKNOWN if absent."""
    changes = body.model_dump(exclude_none=True)
    await update_feed(store, name, changes, metadata_of(request, caller))
    return await get_feed(name, pool)


@router.delete("/{name}", status_code=204)
async def remove_feed(name: str, request: Request, store: Store, caller: Caller = require("*")) -> Response:
    """Delete a feed with its repositories. 404 NAME_UNKNOWN if absent."""
    await delete_feed(store, name, metadata_of(request, caller))
    return Response(status_code=204)

"""The admin JSON API for feeds (``/api/feeds``), documented in the OpenAPI schema (``/api/docs``).

Creating, changing and deleting feeds needs the Admin privilege; listing them is the browse
API's (``routes/browse.py``), which shows each caller the feeds it may view.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from berth_api.deps import Pool, Store
from berth_api.domain.feeds import create_feed, delete_feed, update_feed
from berth_api.routes.browse import FeedOut, feed_rows
from berth_common.auth import Caller, require
from berth_common.errors import NameInvalid, NameUnknown
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
    store: str = Field(default="default", description="the configured store that holds the feed's blobs")


class FeedPatch(BaseModel):
    """Settings of a feed to change; absent fields stay as they are."""

    description: str | None = Field(default=None, max_length=1000)
    public: bool | None = None
    allow_sparse: bool | None = None


@router.post("", status_code=201, response_model=FeedOut, responses={409: {"description": "exists"}})
async def post_feed(
    body: FeedIn, request: Request, store: Store, pool: Pool, caller: Caller = require("*")
) -> FeedOut:
    """Create a feed. 400 NAME_INVALID for a bad name or an unknown store (the store cannot
    change later: a feed's blobs stay where they were pushed), 409 CONFLICT if it exists."""
    known = request.app.state.resources.settings.store_settings()
    if body.store not in known:
        raise NameInvalid(
            f"store {body.store!r} is not configured; configured stores: {', '.join(sorted(known))}"
            " (docs/CONFIGURATION.md, Stores)",
            detail={"store": body.store},
        )
    await create_feed(
        store,
        body.name,
        description=body.description,
        public=body.public,
        allow_sparse=body.allow_sparse,
        store_name=body.store,
        metadata=metadata_of(request, caller),
    )
    return await _feed(pool, body.name)


async def _feed(pool: Pool, name: str) -> FeedOut:
    rows = await feed_rows(pool, [name])
    if not rows:
        raise NameUnknown(f"feed {name!r} does not exist")
    return rows[0]


@router.patch("/{name}", response_model=FeedOut)
async def patch_feed(
    name: str, body: FeedPatch, request: Request, store: Store, pool: Pool, caller: Caller = require("*")
) -> FeedOut:
    """Change a feed's description, public flag or sparse option. 404 NAME_UNKNOWN if absent."""
    changes = body.model_dump(exclude_none=True)
    await update_feed(store, name, changes, metadata_of(request, caller))
    return await _feed(pool, name)


@router.delete("/{name}", status_code=204)
async def remove_feed(name: str, request: Request, store: Store, caller: Caller = require("*")) -> Response:
    """Delete a feed with its repositories. 404 NAME_UNKNOWN if absent."""
    await delete_feed(store, name, metadata_of(request, caller))
    return Response(status_code=204)

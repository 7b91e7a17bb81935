"""The admin JSON API of a feed's connectors (``/api/feeds/<feed>/connectors``).

Listing, adding and removing connectors needs the Admin privilege, as every ``/api/feeds``
change does. A connector's password is write-only: it is never returned (``has_password``
says whether one is stored) and never logged (docs/SECURITY.md, "Connector credentials").
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from berth_api.deps import Pool, Store
from berth_api.domain.connectors import NewConnector, add_connector, remove_connector
from berth_common.auth import Caller, require
from berth_common.connectors.model import Connector, feed_connectors
from berth_common.connectors.secrets import SecretBox
from berth_common.errors import NameUnknown
from berth_common.http.meta import metadata_of

router = APIRouter(prefix="/api/feeds/{name}/connectors", tags=["connectors"])


class ConnectorIn(BaseModel):
    """A connector to add: the upstream ``url`` (``https://registry-1.docker.io``, or a registry
    with a repository prefix such as another Berth's feed, ``https://berth.example/mirror``)."""

    url: str = Field(min_length=1, max_length=2000, examples=["https://registry-1.docker.io"])
    username: str | None = Field(default=None, max_length=500)
    password: str | None = Field(default=None, max_length=10_000, description="write-only")
    namespace: str | None = Field(
        default=None,
        max_length=255,
        description="put before single-component names upstream",
        examples=["library"],
    )
    tag_ttl_seconds: int = Field(default=300, ge=0, le=365 * 24 * 3600)
    cache: bool = Field(default=True, description="store what is fetched (false: pass it through)")


class ConnectorOut(BaseModel):
    """A connector as listed, in the order the feed tries them; never its password."""

    id: str
    position: int
    url: str
    username: str | None
    has_password: bool
    namespace: str | None
    tag_ttl_seconds: int
    cache: bool

    @classmethod
    def of(cls, c: Connector) -> ConnectorOut:
        """From the published view's row."""
        return cls(
            id=c.id, position=c.position, url=c.url, username=c.username,
            has_password=c.password_encrypted is not None, namespace=c.namespace,
            tag_ttl_seconds=c.tag_ttl_seconds, cache=c.cache,
        )  # fmt: skip


async def _listed(pool: Pool, feed: str) -> list[ConnectorOut]:
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM api.feeds WHERE name = $1", feed):
            raise NameUnknown(f"feed {feed!r} does not exist")
        return [ConnectorOut.of(c) for c in await feed_connectors(conn, feed)]


@router.get("", response_model=list[ConnectorOut])
async def list_connectors(name: str, pool: Pool, caller: Caller = require("*")) -> list[ConnectorOut]:
    """The feed's connectors in the order they are tried. 404 NAME_UNKNOWN for an unknown feed."""
    return await _listed(pool, name)


@router.post("", status_code=201, response_model=ConnectorOut)
async def post_connector(
    name: str, body: ConnectorIn, request: Request, store: Store, pool: Pool, caller: Caller = require("*")
) -> ConnectorOut:
    """Add a connector after the feed's others. 400 BAD_REQUEST for a bad URL or namespace, or
    a password when no key is configured (``connectors.key``); 404 NAME_UNKNOWN."""
    box: SecretBox = request.app.state.connector_box
    new = NewConnector(**body.model_dump())
    connector_id = await add_connector(store, box, name, new, metadata_of(request, caller))
    return next(c for c in await _listed(pool, name) if c.id == connector_id)


@router.delete("/{connector_id}", status_code=204)
async def delete_connector(
    name: str, connector_id: str, request: Request, store: Store, caller: Caller = require("*")
) -> Response:
    """Remove a connector (by id or URL); what it cached stays. 404 NOT_FOUND / NAME_UNKNOWN."""
    await remove_connector(store, name, connector_id, metadata_of(request, caller))
    return Response(status_code=204)

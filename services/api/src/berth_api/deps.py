"""FastAPI dependencies of the api service: resources from the lifespan, parsed path parts."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from berth_common.eventstore import EventStore
from berth_common.http.endpoints import resolve_name
from berth_common.oci.reference import RepositoryName
from berth_common.runtime import Resources


def get_resources(request: Request) -> Resources:
    """The process's resources (set by the lifespan in ``app.state.resources``)."""
    resources: Resources = request.app.state.resources
    return resources


async def get_pool(request: Request) -> asyncpg.Pool:
    """The asyncpg pool."""
    return get_resources(request).pool


async def get_store(request: Request) -> EventStore:
    """The event store."""
    return get_resources(request).store


async def get_repository(request: Request, name: str) -> RepositoryName:
    """The ``{name}`` path parameter as a repository name (mirror mode included, see
    ``berth_common.mirror``). Raises ``NameInvalid``."""
    return await resolve_name(request, name)


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Store = Annotated[EventStore, Depends(get_store)]
Repository = Annotated[RepositoryName, Depends(get_repository)]

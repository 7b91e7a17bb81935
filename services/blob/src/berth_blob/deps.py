"""FastAPI dependencies of the blob service: resources from the lifespan, parsed path parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from berth_blob.domain.uploads import Uploads
from berth_common.eventstore import EventStore
from berth_common.http.endpoints import resolve_name
from berth_common.oci.reference import RepositoryName
from berth_common.storage import Stores


async def get_store(request: Request) -> EventStore:
    """The event store."""
    store: EventStore = request.app.state.resources.store
    return store


async def get_uploads(request: Request) -> Uploads:
    """The process's upload sessions service."""
    uploads: Uploads = request.app.state.blob_uploads
    return uploads


async def get_stores(request: Request) -> Stores:
    """The configured blob stores."""
    stores: Stores = request.app.state.blob_stores
    return stores


async def get_repository(request: Request, name: str) -> RepositoryName:
    """The ``{name}`` path parameter as a repository name (mirror mode included, see
    ``berth_common.mirror``). Raises ``NameInvalid``."""
    return await resolve_name(request, name)


Store = Annotated[EventStore, Depends(get_store)]
UploadsDep = Annotated[Uploads, Depends(get_uploads)]
StoresDep = Annotated[Stores, Depends(get_stores)]
Repository = Annotated[RepositoryName, Depends(get_repository)]

"""FastAPI dependencies of the blob service: resources from the lifespan, parsed path parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from berth_blob.domain.uploads import Uploads
from berth_common.eventstore import EventStore
from berth_common.oci.reference import RepositoryName
from berth_common.storage import StorageDriver


async def get_store(request: Request) -> EventStore:
    """The event store."""
    store: EventStore = request.app.state.resources.store
    return store


async def get_uploads(request: Request) -> Uploads:
    """The process's upload sessions service."""
    uploads: Uploads = request.app.state.blob_uploads
    return uploads


async def get_storage(request: Request) -> StorageDriver:
    """The storage driver."""
    storage: StorageDriver = request.app.state.blob_storage
    return storage


async def get_repository(name: str) -> RepositoryName:
    """The ``{name}`` path parameter as a repository name. Raises ``NameInvalid``."""
    return RepositoryName.parse(name)


Store = Annotated[EventStore, Depends(get_store)]
UploadsDep = Annotated[Uploads, Depends(get_uploads)]
Storage = Annotated[StorageDriver, Depends(get_storage)]
Repository = Annotated[RepositoryName, Depends(get_repository)]

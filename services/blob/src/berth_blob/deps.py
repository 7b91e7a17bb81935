"""FastAPI dependencies of the blob service: resources built in the lifespan.

Routes take them with ``Depends(get_…)`` (``routes/blobs.py``, ``routes/uploads.py``).
"""

from __future__ import annotations

from fastapi import Request

from berth_blob.domain.uploads import Uploads
from berth_common.eventstore import EventStore
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

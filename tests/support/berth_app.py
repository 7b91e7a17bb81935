"""Berth's all-in-one app in process, for fast black-box tests over ``httpx.ASGITransport``.

Real PostgreSQL (a fresh database) and real NATS JetStream (a fresh stream) on this machine;
filesystem storage in a temporary folder.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from berth.allinone import create_app
from berth.token_auth import RegistryAuth
from berth_common.settings import BusSettings, Settings, StorageSettings
from berth_common.storage import StorageDriver, Stores
from tests.support.databases import NATS_URL, delete_stream, temporary_database, unique

ADMIN_PASSWORD = "berth-test-admin"


@dataclass
class BerthApp:
    """A running in-process Berth: its app, settings and a client."""

    app: FastAPI
    settings: Settings
    client: httpx.AsyncClient

    async def create_feed(self, name: str, public: bool = False, store: str = "default") -> None:
        """Create a feed through the admin API; raises on failure."""
        r = await self.client.post("/api/feeds", json={"name": name, "public": public, "store": store})
        r.raise_for_status()

    @property
    def stores(self) -> Stores:
        """The blob service's configured stores."""
        stores: Stores = self.app.state.blob_stores
        return stores

    @property
    def storage(self) -> StorageDriver:
        """The ``default`` store's driver (where feeds created without ``store`` keep blobs)."""
        return self.stores.driver("default")


@contextlib.asynccontextmanager
async def berth_app(
    *, with_bus: bool = True, admin_password: str = ADMIN_PASSWORD, **settings_changes: Any
) -> AsyncIterator[BerthApp]:
    """Start Berth in process on a fresh database, stream and storage folder.

    ``client`` is logged in as ``admin`` (password ``admin_password``) through the token flow.
    ``settings_changes`` are further ``Settings`` fields (e.g. ``auth=AuthSettings(...)``).
    """
    stream = unique("BERTH_TEST_")
    with tempfile.TemporaryDirectory(prefix="berth-test-") as tmp:
        async with temporary_database() as dsn:
            settings = Settings(
                database_url=dsn,
                nats_url=NATS_URL if with_bus else None,
                nats_stream=stream,
                data_dir=Path(tmp),
                storage=StorageSettings(root=Path(tmp) / "storage"),
                relay_poll_seconds=0.2,
                admin_password=admin_password,
                **({"bus": BusSettings(catch_up_seconds=0.5)} | settings_changes),
            )
            app = create_app(settings)
            try:
                async with app.router.lifespan_context(app):
                    transport = httpx.ASGITransport(app=app)
                    auth = RegistryAuth("admin", admin_password)
                    async with httpx.AsyncClient(
                        transport=transport, base_url="http://berth.test", timeout=60, auth=auth
                    ) as client:
                        yield BerthApp(app, settings, client)
            finally:
                if with_bus:
                    await delete_stream(stream)


@contextlib.asynccontextmanager
async def berth_client() -> AsyncIterator[tuple[httpx.AsyncClient, Callable[[str], Awaitable[None]]]]:
    """``(client, create_feed)`` for the spec suite (see ``tests/spec/conftest.py``)."""
    async with berth_app() as running:
        yield running.client, running.create_feed

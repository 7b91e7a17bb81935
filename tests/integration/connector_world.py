"""Shared setup of the connector integration tests: Berth in process with a connectors key,
Distribution as the upstream, images pushed to it, and reading Berth's event store."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from berth_common.settings import ConnectorSettings
from tests.spec.helpers import Image, push_image
from tests.support.berth_app import BerthApp, berth_app

KEY = Fernet.generate_key().decode()


@contextlib.asynccontextmanager
async def berth_with_key(**settings: Any) -> AsyncIterator[BerthApp]:
    """``berth_app`` with ``connectors.key`` set (short fetch leases, as in every test)."""
    connectors = ConnectorSettings(key=KEY, fetch_lease_seconds=3.0)
    async with berth_app(connectors=connectors, **settings) as running:
        yield running


def fresh(prefix: str = "f") -> str:
    """A new lowercase name component."""
    return f"{prefix}{secrets.token_hex(4)}"


async def seed(url: str, repo: str, tag: str | None = "latest", auth: httpx.Auth | None = None) -> Image:
    """Push a small image (config + one layer) to the registry at ``url`` as ``repo:tag``."""
    async with httpx.AsyncClient(base_url=url, auth=auth, timeout=60) as client:
        return await push_image(client, repo, tag)


async def connect(berth: BerthApp, feed: str, url: str, **fields: Any) -> dict[str, Any]:
    """Create ``feed`` (if needed) and add a connector to ``url``; returns the listed connector."""
    if (await berth.client.get(f"/api/feeds/{feed}")).status_code == 404:
        await berth.create_feed(feed)
    r = await berth.client.post(f"/api/feeds/{feed}/connectors", json={"url": url, **fields})
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def events(berth: BerthApp, *types: str) -> list[dict[str, Any]]:
    """``(type, stream, payload)`` of every event of ``types`` in position order."""
    conn = await asyncpg.connect(berth.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, stream, payload::text AS payload FROM eventstore.events"
            " WHERE type = ANY($1::text[]) ORDER BY position",
            list(types),
        )
    finally:
        await conn.close()
    import json

    return [{"type": r["type"], "stream": r["stream"], "payload": json.loads(r["payload"])} for r in rows]


async def query(berth: BerthApp, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of ``sql`` on Berth's database."""
    conn = await asyncpg.connect(berth.settings.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def stored_blob(berth: BerthApp, feed: str, digest: str) -> Path:
    """Where the filesystem store ``default`` (where new feeds keep their blobs, deduplicated
    across them) keeps ``digest``; ``feed`` is for the reader."""
    hexpart = digest.split(":", 1)[1]
    return berth.settings.storage.root / "blobs/sha256" / hexpart[:2] / hexpart

"""Shared setup of the auth integration tests: a running Berth, clients per identity, images."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from berth.token_auth import RegistryAuth
from tests.support.berth_app import BerthApp

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def manifest(note: str) -> bytes:
    """A distinct OCI image manifest (no layers) whose digest depends on ``note``."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": CONFIG_DIGEST,
                "size": len(CONFIG),
            },
            "layers": [],
            "annotations": {"note": note},
        }
    ).encode()


def digest_of(body: bytes) -> str:
    """``sha256:<hex>`` of ``body``."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def client(berth: BerthApp, user: str | None = None, password: str | None = None) -> httpx.AsyncClient:
    """A client on the in-process Berth doing the token flow as ``user`` (``None``: anonymous)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=berth.app),
        base_url="http://berth.test",
        auth=RegistryAuth(user, password),
        timeout=60,
    )


def raw_client(berth: BerthApp) -> httpx.AsyncClient:
    """A client without any authentication handling."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=berth.app), base_url="http://berth.test", timeout=60
    )


async def api(berth: BerthApp, method: str, path: str, body: Any = None) -> Any:
    """Call the admin API as admin; returns the JSON body (or None). Raises on failure."""
    r = await berth.client.request(method, path, json=body)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


async def put_manifest(c: httpx.AsyncClient, repo: str, ref: str, body: bytes) -> httpx.Response:
    """PUT a manifest."""
    return await c.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": MANIFEST_TYPE})


async def seed_repository(berth: BerthApp, repo: str) -> None:
    """As admin: upload the config blob and tag ``base`` → ``manifest("A")``."""
    r = await berth.client.post(f"/v2/{repo}/blobs/uploads/?digest={CONFIG_DIGEST}", content=CONFIG)
    assert r.status_code == 201, r.text
    r = await put_manifest(berth.client, repo, "base", manifest("A"))
    assert r.status_code == 201, r.text

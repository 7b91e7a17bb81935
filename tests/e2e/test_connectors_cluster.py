"""One upstream fetch per missing object however many pull, across processes
(docs/ARCHITECTURE.md, "Connectors"; ``berth_common.connectors.singleflight``).

Two real ``berth serve all`` processes on one database and one blob store
(``tests.support.cluster``) with a connector to Distribution 2.8. Twenty skopeo processes pull
the same uncached image at once, half from each Berth; Distribution's access log must show
the manifest and each blob fetched exactly once, and every pull must get the right bytes
(skopeo verifies each blob's digest).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet

from tests.e2e.clients import docker_ref
from tests.spec.helpers import push_blob
from tests.support.berth_process import registry_credentials
from tests.support.cluster import cluster
from tests.support.upstream import distribution

pytestmark = pytest.mark.e2e
PULLS = 20
LAYER_BYTES = 8 << 20


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_image(url: str, repo: str, tag: str) -> dict[str, Any]:
    """An image with an 8 MiB random layer (slow enough for the pulls to overlap); its manifest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    layer = os.urandom(LAYER_BYTES)
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        for blob in (config, layer):
            await push_blob(c, repo, blob)
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(layer),
                        "size": len(layer)}],
        }  # fmt: skip
        body = json.dumps(manifest).encode()
        r = await c.put(f"/v2/{repo}/manifests/{tag}", content=body,
                        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
        assert r.status_code == 201, r.text
    return manifest


async def skopeo_pull(source: str, target: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "skopeo", "copy", "--src-tls-verify=false", source, f"dir:{target}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode(errors="replace")


async def test_twenty_concurrent_pulls_fetch_each_object_upstream_once(tmp_path: Path) -> None:
    with distribution(tmp_path / "up") as upstream:
        manifest = await push_image(upstream.url, "team/app", "v1")
        key = Fernet.generate_key().decode()
        async with cluster(tmp_path, 2, BERTH_CONNECTORS__KEY=key) as group:
            async with group.client(0) as admin:
                assert (await admin.post("/api/feeds", json={"name": "cache"})).status_code == 201
                r = await admin.post("/api/feeds/cache/connectors", json={"url": f"{upstream.url}/team"})
                assert r.status_code == 201, r.text
            hosts = [s.url.removeprefix("http://") for s in group.servers]
            for host in hosts:
                registry_credentials(host)
            pulls = [
                skopeo_pull(docker_ref(hosts[i % 2], "cache/app", "v1"), tmp_path / f"pull-{i}")
                for i in range(PULLS)
            ]
            results = await asyncio.gather(*pulls)
            assert all(code == 0 for code, _ in results), [err for code, err in results if code] + [
                group.logs()
            ]
            layer = manifest["layers"][0]
            for i in range(PULLS):
                pulled = tmp_path / f"pull-{i}" / layer["digest"].split(":", 1)[1]
                assert pulled.stat().st_size == LAYER_BYTES
            assert upstream.count("GET", "/v2/team/app/manifests/v1") == 1, upstream.access_log()
            for blob in (manifest["config"], layer):
                assert upstream.count("GET", f"/v2/team/app/blobs/{blob['digest']}") == 1, (
                    upstream.access_log()
                )
            conn = await asyncpg.connect(group.database_url)
            try:
                recorded = await conn.fetch(
                    "SELECT type, count(*) AS n FROM eventstore.events WHERE type IN"
                    " ('manifest.cached', 'blob.cached', 'tag.updated') GROUP BY type ORDER BY type"
                )
            finally:
                await conn.close()
            assert [(r["type"], r["n"]) for r in recorded] == [
                ("blob.cached", 2), ("manifest.cached", 1), ("tag.updated", 1)
            ]  # fmt: skip

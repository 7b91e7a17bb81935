"""The separately deployed form (docs/DESIGN.md §1): four ``berth serve`` processes behind a proxy.

api, blob, auth and gc run as their own processes on one fresh database and one fresh JetStream
stream; ``berth serve proxy`` routes by path (``berth_common.http.routing``). skopeo pushes an
image through the proxy and pulls it back; the gc service's durable consumer must then hold the
manifest's references (``gc.blob_references``), which proves that a standalone service runs the
outbox relay and that events reach the bus without the all-in-one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, inspect_raw, skopeo_copy
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, registry_credentials
from tests.support.databases import NATS_URL, delete_stream, temporary_database, unique
from tests.support.serve_process import ServeProcess, start, stop, wait_ready

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "blob", "auth", "gc")
PROJECTION_TIMEOUT = 60.0  # seconds for the gc consumer to catch up (a deadline, not a measure)


@contextlib.contextmanager
def separate_berth(workdir: Path, database_url: str, stream: str) -> Iterator[ServeProcess]:
    """Start the four services and the proxy; yield the proxy once everything is ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env |= {
        "BERTH_DATABASE_URL": database_url,
        "BERTH_NATS_URL": NATS_URL,
        "BERTH_NATS_STREAM": stream,
        "BERTH_STORAGE__ROOT": str(workdir / "storage"),
        "BERTH_RELAY_POLL_SECONDS": "0.2",
        "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    processes = [start(svc, [svc], env, workdir) for svc in SERVICES]
    try:
        wait_ready(processes, "/healthz")
        urls = [f"--{p.name}={p.url}" for p in processes]
        processes.append(start("proxy", ["proxy", *urls], env, workdir))
        wait_ready(processes[-1:], "/v2/")
        exited = [f"{p.name} exited with {p.proc.returncode}" for p in processes if p.proc.poll() is not None]
        if exited:  # e.g. one lost its port to another process that then answered in its place
            raise RuntimeError("; ".join(exited))
        yield processes[-1]
    except BaseException:
        print("\n".join(p.log() for p in processes))
        raise
    finally:
        stop(processes)


@contextlib.asynccontextmanager
async def fresh_backends() -> AsyncIterator[tuple[str, str]]:
    """``(database_url, stream)``: a fresh database and a JetStream stream name deleted afterwards."""
    stream = unique("BERTH_SEP_")
    async with temporary_database("berth_sep_") as database_url:
        try:
            yield database_url, stream
        finally:
            await delete_stream(stream)


async def _references(database_url: str, repository: str) -> set[tuple[str, str]]:
    """``{(manifest, blob)}`` rows of ``gc.blob_references`` for ``repository``, once any exist."""
    deadline = time.monotonic() + PROJECTION_TIMEOUT
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            rows = await conn.fetch(
                "SELECT manifest, blob FROM gc.blob_references WHERE repository = $1", repository
            )
            if rows or time.monotonic() > deadline:
                return {(r["manifest"], r["blob"]) for r in rows}
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _round_trip(workdir: Path, database_url: str, stream: str) -> tuple[set[tuple[str, str]], str]:
    """Push and pull through the proxy; return the gc references of the repository and the
    digest expected to be referenced (runs in a worker thread: every call here blocks)."""
    layout = workdir / "oci"
    oci_layout.build_image(layout, "v1")
    pushed = oci_layout.resolve_tag(layout, "v1")["digest"]
    with separate_berth(workdir, database_url, stream) as proxy:
        feed = unique("sep")
        created = httpx.post(
            f"{proxy.url}/api/feeds",
            json={"name": feed},
            timeout=30.0,
            auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
        )
        registry_credentials(proxy.url.removeprefix("http://"))
        assert created.status_code == 201, created.text
        remote = docker_ref(proxy.url.removeprefix("http://"), f"{feed}/busybox", "v1")
        skopeo_copy(f"oci:{layout}:v1", remote)
        skopeo_copy(remote, f"oci:{workdir / 'back'}:v1")
        assert oci_layout.resolve_tag(workdir / "back", "v1")["digest"] == pushed
        assert inspect_raw(remote) == oci_layout.read_blob(layout, pushed)
        return asyncio.run(_references(database_url, f"{feed}/busybox")), pushed


async def test_push_pull_through_proxy_to_separate_services(tmp_path: Path) -> None:
    """skopeo push + pull through the proxy keep the digests; the gc consumer sees the manifest."""
    async with fresh_backends() as (database_url, stream):
        references, pushed = await asyncio.to_thread(_round_trip, tmp_path, database_url, stream)
    manifest = json.loads(oci_layout.read_blob(tmp_path / "oci", pushed))
    blobs = {d["digest"] for d in [manifest["config"], *manifest["layers"]]}
    assert {(pushed, blob) for blob in blobs} <= references


def _sha(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_gc_in_its_own_process_keeps_a_manifest_committed_while_it_waits(tmp_path: Path) -> None:
    """gc runs in its own ``berth serve gc`` process (issue 15 §4). A manifest PUT in flight
    holds ``FOR SHARE`` on the links it checked: here the test holds that lock itself, asks the
    gc process for a run with grace 0, proves from ``pg_locks`` that gc waits for it, then a real
    manifest PUT (api process) commits while gc still waits; once released, gc must find the
    manifest's references (its projection caught up from the event store) and keep the links,
    while it collects a blob nothing references. The deleted blob is an event of actor
    ``system:gc``."""
    from tests.support.locks import wait_until_blocked

    config, layer, junk = b'{"architecture":"amd64","os":"linux"}', os.urandom(3000), os.urandom(1000)
    async with fresh_backends() as (database_url, stream):
        with separate_berth(tmp_path, database_url, stream) as proxy:
            auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
            async with httpx.AsyncClient(base_url=proxy.url, auth=auth, timeout=60) as c:
                feed = unique("gcp")
                assert (await c.post("/api/feeds", json={"name": feed})).status_code == 201
                for data in (config, layer, junk):
                    r = await c.post(f"/v2/{feed}/x/blobs/uploads/?digest={_sha(data)}", content=data)
                    assert r.status_code == 201, r.text
                manifest = json.dumps({
                    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": _sha(config), "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": _sha(layer), "size": len(layer)}],
                }).encode()  # fmt: skip
                pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
                try:
                    async with pool.acquire() as held, held.transaction():
                        await held.execute(  # what a manifest PUT in flight holds
                            "SELECT 1 FROM blob.links WHERE repository = $1 AND digest = ANY($2::text[])"
                            " FOR SHARE",
                            f"{feed}/x", [_sha(config), _sha(layer)],
                        )  # fmt: skip
                        run = asyncio.create_task(
                            c.post("/api/gc/runs", json={"grace_seconds": 0, "feed": feed})
                        )
                        assert await wait_until_blocked(pool, run) == "transactionid"
                        put = await c.put(
                            f"/v2/{feed}/x/manifests/v1",
                            content=manifest,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                        )
                        assert put.status_code == 201, put.text
                        assert not run.done()
                    done = (await run).json()
                    assert done["status"] == "succeeded", done
                    assert done["result"]["feeds"][feed] == {
                        "unlinked": 1, "deleted": 1, "bytes": len(junk), "expired": 0, "expired_bytes": 0,
                    }  # fmt: skip
                    for data in (config, layer):
                        got = await c.get(f"/v2/{feed}/x/blobs/{_sha(data)}")
                        assert got.status_code == 200 and got.content == data
                    gone = await c.head(f"/v2/{feed}/x/blobs/{_sha(junk)}")
                    assert gone.status_code == 404
                    actor = await pool.fetchval(
                        "SELECT metadata->>'actor' FROM eventstore.events WHERE type = 'blob.deleted'"
                        " AND payload->>'digest' = $1",
                        _sha(junk),
                    )
                    assert actor == "system:gc"
                finally:
                    await pool.close()

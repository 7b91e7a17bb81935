"""The separately deployed form (DESIGN §1): four ``berth serve`` processes behind ``berth serve proxy``.

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

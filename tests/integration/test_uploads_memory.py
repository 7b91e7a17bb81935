"""Uploads stream (memory flat in blob size); manifest GETs never touch storage (docs/DESIGN.md §3)."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from berth_common.storage.filesystem import FilesystemDriver
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    async with berth_app(with_bus=False) as running:
        await running.create_feed("mem")
        yield running


def _pattern(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * 2048  # 64 KiB, distinct per index


async def _body(chunks: int) -> AsyncIterator[bytes]:
    for i in range(chunks):
        yield _pattern(i)


def _digest(chunks: int) -> str:
    h = hashlib.sha256()
    for i in range(chunks):
        h.update(_pattern(i))
    return "sha256:" + h.hexdigest()


async def test_streamed_upload_memory_is_flat_in_blob_size(berth: BerthApp) -> None:
    chunks = 256 * MiB // (64 * 1024)
    digest = _digest(chunks)
    start = await berth.client.post("/v2/mem/big/blobs/uploads/")
    location = start.headers["location"]
    tracemalloc.start()
    try:
        patch = await berth.client.patch(location, content=_body(chunks))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert patch.status_code == 202, patch.text
    assert patch.headers["range"] == f"0-{256 * MiB - 1}"
    put = await berth.client.put(f"{location}?digest={digest}")
    assert put.status_code == 201, put.text
    assert peak < 24 * MiB, f"peak Python memory {peak / MiB:.1f} MiB while streaming 256 MiB"


DRIVER_METHODS = (
    "stat", "read", "write", "writer", "move", "delete", "list", "url_for", "pending",
    "abort_pending", "local_path",
)  # fmt: skip


def _counted(method: Callable[..., Any], name: str, calls: list[str]) -> Callable[..., Any]:
    """``method`` of the driver class, recording ``name`` in ``calls`` at every call."""

    def counting(self: FilesystemDriver, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return method(self, *args, **kwargs)

    return counting


async def test_manifest_get_reads_no_storage(berth: BerthApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest GET/HEAD (by tag and by digest) is one database lookup: the storage driver is
    asked for nothing. Every method of the filesystem driver *class* is counted — however a
    route reached a driver instance (``Stores``, a wrapper, a cached reference), a call lands
    here — and a blob GET through the same counting is seen, so the zero is not vacuous."""
    config = b"{}"
    cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
    r = await berth.client.post(f"/v2/mem/img/blobs/uploads/?digest={cdigest}", content=config)
    assert r.status_code == 201
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": 2},
            "layers": [],
        }
    ).encode()
    r = await berth.client.put(
        "/v2/mem/img/manifests/v1",
        content=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 201, r.text
    calls: list[str] = []
    for name in DRIVER_METHODS:
        monkeypatch.setattr(FilesystemDriver, name, _counted(getattr(FilesystemDriver, name), name, calls))
    for ref in ("v1", r.headers["docker-content-digest"]):
        for method in ("GET", "HEAD"):
            got = await berth.client.request(method, f"/v2/mem/img/manifests/{ref}")
            assert got.status_code == 200
            assert got.headers["docker-content-digest"] == r.headers["docker-content-digest"]
    assert calls == []
    assert (await berth.client.get(f"/v2/mem/img/blobs/{cdigest}")).content == config
    assert calls != []  # the counting sees what the blob route reads

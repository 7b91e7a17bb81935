"""Sparse indexes and manifests, a per-feed option (off by default).

OCI distribution spec v1.1.1, "Pushing Manifests": "A registry MAY reject a manifest of any type
uploaded to the manifest endpoint if it references manifests or blobs that do not exist in the
registry. When a manifest is rejected for this reason, it MUST result in one or more
MANIFEST_BLOB_UNKNOWN errors." Berth rejects them unless the feed allows sparse content
(``berth feed create --allow-sparse``, ``allow_sparse`` in the admin API), which is what
``skopeo copy --multi-arch=index-only`` and mirrors of a few platforms need (the conformance
suite's ``OCI_DATA_SPARSE``). A missing child is then simply not found: ``MANIFEST_UNKNOWN``,
a missing blob ``BLOB_UNKNOWN``; nothing else changes.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.spec.conftest import Registry
from tests.spec.helpers import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    descriptor,
    digest_of,
    get_manifest,
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    to_bytes,
)

pytestmark = pytest.mark.berth_only  # a feed option of Berth's admin API


@pytest.fixture
async def sparse_repo(registry: Registry) -> str:
    """A repository in a fresh feed created with ``allow_sparse``."""
    feed = f"sparse{secrets.token_hex(4)}"
    r = await registry.client.post("/api/feeds", json={"name": feed, "allow_sparse": True})
    assert r.status_code == 201, r.text
    assert r.json()["allow_sparse"] is True
    return f"{feed}/img"


def missing_manifest() -> dict[str, object]:
    """A descriptor of an image manifest that was never pushed."""
    return descriptor(OCI_MANIFEST, random_blob(300), platform={"architecture": "arm64", "os": "linux"})


async def test_sparse_index_is_accepted_and_missing_child_is_unknown(
    client: httpx.AsyncClient, sparse_repo: str
) -> None:
    present = await push_image(client, sparse_repo)
    absent = missing_manifest()
    body = to_bytes(
        index_manifest([present.descriptor(platform={"architecture": "amd64", "os": "linux"}), absent])
    )
    r = await push_manifest(client, sparse_repo, "multi", body, OCI_INDEX)
    assert r.status_code == 201, r.text
    assert (await get_manifest(client, sparse_repo, "multi")).content == body
    assert (await get_manifest(client, sparse_repo, present.digest)).content == present.body
    assert_error(await get_manifest(client, sparse_repo, str(absent["digest"])), 404, "MANIFEST_UNKNOWN")
    head = await client.head(
        f"/v2/{sparse_repo}/manifests/{absent['digest']}", headers={"Accept": OCI_MANIFEST}
    )
    assert head.status_code == 404


async def test_sparse_manifest_without_its_blobs_is_accepted(
    client: httpx.AsyncClient, sparse_repo: str
) -> None:
    config, layer, pushed = b'{"os":"linux"}', random_blob(50), random_blob(60)
    await push_blob(client, sparse_repo, pushed)
    doc = image_manifest(
        descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer), descriptor(OCI_LAYER, pushed)]
    )
    body = to_bytes(doc)
    r = await push_manifest(client, sparse_repo, "v1", body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    assert (await get_manifest(client, sparse_repo, digest_of(body))).content == body
    assert_error(await client.get(f"/v2/{sparse_repo}/blobs/{digest_of(layer)}"), 404, "BLOB_UNKNOWN")
    assert (await client.get(f"/v2/{sparse_repo}/blobs/{digest_of(pushed)}")).content == pushed


async def test_other_feeds_still_refuse_sparse_content(client: httpx.AsyncClient, repo: str) -> None:
    present = await push_image(client, repo)
    body = to_bytes(index_manifest([present.descriptor(), missing_manifest()]))
    assert_error(
        await push_manifest(client, repo, "multi", body, OCI_INDEX), (400, 404), "MANIFEST_BLOB_UNKNOWN"
    )
    doc = image_manifest(descriptor(OCI_CONFIG, b"{}"), [descriptor(OCI_LAYER, random_blob(10))])
    r = await push_manifest(client, repo, "v1", to_bytes(doc), OCI_MANIFEST)
    assert_error(r, (400, 404), "MANIFEST_BLOB_UNKNOWN")


async def test_the_option_is_changed_by_a_feed_update(client: httpx.AsyncClient, sparse_repo: str) -> None:
    feed = sparse_repo.split("/")[0]
    r = await client.patch(f"/api/feeds/{feed}", json={"allow_sparse": False})
    assert r.status_code == 200 and r.json()["allow_sparse"] is False
    body = to_bytes(index_manifest([missing_manifest()]))
    assert_error(
        await push_manifest(client, sparse_repo, "multi", body, OCI_INDEX),
        (400, 404),
        "MANIFEST_BLOB_UNKNOWN",
    )
    r = await client.patch(f"/api/feeds/{feed}", json={"allow_sparse": True})
    assert r.json()["allow_sparse"] is True
    assert (await push_manifest(client, sparse_repo, "multi", body, OCI_INDEX)).status_code == 201
    listed = {f["name"]: f["allow_sparse"] for f in (await client.get("/api/feeds")).json()}
    assert listed[feed] is True

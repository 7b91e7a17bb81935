"""Deleting manifests, tags and blobs. OCI distribution spec v1.1, "Content Management"
(end-9, end-10)."""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import (
    OCI_MANIFEST,
    assert_error,
    get_manifest,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
)


async def tags_of(client: httpx.AsyncClient, repo: str) -> set[str]:
    """The tags of ``repo`` as a set (an unknown repository has none)."""
    r = await client.get(f"/v2/{repo}/tags/list")
    return set(r.json().get("tags") or []) if r.status_code == 200 else set()


async def test_delete_manifest_by_digest_removes_its_tags(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "v1")
    assert (await push_manifest(client, repo, "v1-alias", image.body, OCI_MANIFEST)).status_code == 201
    keep = await push_image(client, repo, "keep")
    r = await client.delete(f"/v2/{repo}/manifests/{image.digest}")
    assert r.status_code == 202
    for ref in (image.digest, "v1", "v1-alias"):
        assert_error(await get_manifest(client, repo, ref), 404, "MANIFEST_UNKNOWN")
    assert (await client.head(f"/v2/{repo}/manifests/v1")).status_code == 404
    assert await tags_of(client, repo) == {"keep"}
    assert (await get_manifest(client, repo, keep.digest)).status_code == 200


async def test_deleted_manifest_can_be_pushed_again(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "v1")
    assert (await client.delete(f"/v2/{repo}/manifests/{image.digest}")).status_code == 202
    assert (await push_manifest(client, repo, "v1", image.body, OCI_MANIFEST)).status_code == 201
    r = await get_manifest(client, repo, "v1")
    assert r.status_code == 200
    assert r.content == image.body


async def test_delete_unknown_manifest_is_404(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "v1")
    r = await client.delete(f"/v2/{repo}/manifests/sha256:{'6' * 64}")
    assert_error(r, 404, "MANIFEST_UNKNOWN")


async def test_delete_by_tag_is_accepted_or_refused(client: httpx.AsyncClient, repo: str) -> None:
    """Tag deletion is optional: 202, or 400/405 when disabled; the manifest itself stays."""
    image = await push_image(client, repo, "v1")
    r = await client.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code in (202, 400, 405)
    assert (await get_manifest(client, repo, image.digest)).status_code == 200


@pytest.mark.berth_only  # Distribution 2.8 refuses DELETE by tag (400 DIGEST_INVALID)
async def test_delete_by_tag_removes_only_that_tag(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "v1")
    assert (await push_manifest(client, repo, "v2", image.body, OCI_MANIFEST)).status_code == 201
    r = await client.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code == 202
    assert_error(await get_manifest(client, repo, "v1"), 404, "MANIFEST_UNKNOWN")
    assert (await get_manifest(client, repo, "v2")).content == image.body
    assert (await get_manifest(client, repo, image.digest)).content == image.body
    assert await tags_of(client, repo) == {"v2"}


@pytest.mark.berth_only  # Distribution 2.8 refuses DELETE by tag
async def test_delete_unknown_tag_is_404(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "v1")
    assert_error(await client.delete(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")


async def test_delete_blob(client: httpx.AsyncClient, repo: str) -> None:
    digest = await push_blob(client, repo, random_blob(99))
    r = await client.delete(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 202
    assert (await client.head(f"/v2/{repo}/blobs/{digest}")).status_code == 404
    assert_error(await client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(await client.delete(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


async def test_delete_blob_in_one_repository_keeps_it_in_another(
    client: httpx.AsyncClient, repo: str, other_repo: str
) -> None:
    data = random_blob(70)
    digest = await push_blob(client, other_repo, data)
    await push_blob(client, repo, data)
    assert (await client.delete(f"/v2/{repo}/blobs/{digest}")).status_code == 202
    r = await client.get(f"/v2/{other_repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data

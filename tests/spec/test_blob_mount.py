"""Cross-repository blob mount. OCI distribution spec v1.1, "Mounting a blob from another
repository" (end-11)."""

from __future__ import annotations

import httpx

from tests.spec.helpers import UUID_RE, digest_of, location_path, push_blob, random_blob, with_query


async def test_mount_from_repository_that_has_the_blob(
    client: httpx.AsyncClient, repo: str, other_repo: str
) -> None:
    data = random_blob(333)
    digest = await push_blob(client, other_repo, data)
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": other_repo})
    assert r.status_code == 201
    assert location_path(r.headers["location"]) == f"/v2/{repo}/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    head = await client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["content-length"] == "333"
    assert (await client.get(f"/v2/{repo}/blobs/{digest}")).content == data


async def test_mount_from_repository_without_the_blob_falls_back_to_upload(
    client: httpx.AsyncClient, repo: str, other_repo: str
) -> None:
    """202 + Location: an ordinary upload session the client may continue with."""
    await push_blob(client, other_repo, random_blob(10))
    data = random_blob(50)
    digest = digest_of(data)
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": other_repo})
    assert r.status_code == 202
    assert UUID_RE.search(r.headers["location"])
    assert (await client.head(f"/v2/{repo}/blobs/{digest}")).status_code == 404
    done = await client.put(with_query(r.headers["location"], digest=digest), content=data)
    assert done.status_code == 201


async def test_mount_without_from(client: httpx.AsyncClient, repo: str, other_repo: str) -> None:
    """The registry MAY treat ``from`` as optional: 201 (mounted) or 202 (upload session)."""
    digest = await push_blob(client, other_repo, random_blob(40))
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest})
    assert r.status_code in (201, 202)
    assert r.headers.get("location")
    expected = 200 if r.status_code == 201 else 404
    assert (await client.head(f"/v2/{repo}/blobs/{digest}")).status_code == expected


async def test_mount_from_unknown_repository_falls_back_to_upload(
    client: httpx.AsyncClient, repo: str
) -> None:
    digest = digest_of(random_blob(10))
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": f"{repo}-missing"})
    assert r.status_code == 202
    assert r.headers.get("location")

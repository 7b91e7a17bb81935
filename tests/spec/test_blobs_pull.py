"""Pulling blobs: GET/HEAD, ranges, unknown blobs, other digest algorithms.

OCI distribution spec v1.1, "Pulling blobs", "Checking if content exists in the registry"
(end-2) and RFC 9110 range requests.
"""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import assert_digest_matches, assert_error, digest_of, push_blob, random_blob

UNKNOWN = "sha256:" + "0" * 64


async def test_get_blob_returns_exact_bytes_and_headers(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(1000)
    digest = await push_blob(client, repo, data)
    r = await client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-length"] == str(len(data))


async def test_head_blob_has_headers_and_no_body(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(777)
    digest = await push_blob(client, repo, data)
    r = await client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-length"] == str(len(data))


async def test_get_unknown_blob_is_404_blob_unknown(client: httpx.AsyncClient, repo: str) -> None:
    await push_blob(client, repo, random_blob(10))  # the repository exists
    assert_error(await client.get(f"/v2/{repo}/blobs/{UNKNOWN}"), 404, "BLOB_UNKNOWN")


async def test_head_unknown_blob_is_404_without_body(client: httpx.AsyncClient, repo: str) -> None:
    await push_blob(client, repo, random_blob(10))
    r = await client.head(f"/v2/{repo}/blobs/{UNKNOWN}")
    assert r.status_code == 404
    assert r.content == b""


async def test_blob_of_another_repository_is_unknown_here(
    client: httpx.AsyncClient, repo: str, other_repo: str
) -> None:
    """Blobs are linked per repository: pushing to one does not make it pullable from another."""
    digest = await push_blob(client, other_repo, random_blob(64))
    await push_blob(client, repo, random_blob(10))
    assert_error(await client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-0", 0, 0), ("bytes=10-", 10, 99), ("bytes=-5", 95, 99), ("bytes=20-29", 20, 29)],
)
async def test_range_request_returns_206_and_content_range(
    client: httpx.AsyncClient, repo: str, header: str, start: int, end: int
) -> None:
    data = random_blob(100)
    digest = await push_blob(client, repo, data)
    r = await client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/100"
    assert r.content == data[start : end + 1]
    assert r.headers["content-length"] == str(end - start + 1)


@pytest.mark.berth_only  # Distribution 2.8 writes 200 headers then drops the connection
@pytest.mark.parametrize("header", ["bytes=100-200", "bytes=500-"])
async def test_unsatisfiable_range_is_416(client: httpx.AsyncClient, repo: str, header: str) -> None:
    digest = await push_blob(client, repo, random_blob(100))
    r = await client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 416
    assert r.headers.get("content-range") == "bytes */100"


async def test_sha512_blob_push_and_pull(client: httpx.AsyncClient, repo: str) -> None:
    """Digests of other algorithms: the content is addressable by its sha512 digest; a
    Docker-Content-Digest header, if in another algorithm, still matches the body."""
    data = random_blob(300)
    digest = await push_blob(client, repo, data, algorithm="sha512")
    assert digest == digest_of(data, "sha512")
    r = await client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert_digest_matches(r.headers.get("docker-content-digest"), data)
    head = await client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["content-length"] == "300"


@pytest.mark.berth_only  # Distribution 2.8 canonicalises to sha256 in Docker-Content-Digest
async def test_sha512_blob_keeps_its_digest(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(300)
    digest = await push_blob(client, repo, data, algorithm="sha512")
    r = await client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.headers["docker-content-digest"] == digest


async def test_malformed_digest_in_blob_get_is_400_digest_invalid(
    client: httpx.AsyncClient, repo: str
) -> None:
    await push_blob(client, repo, random_blob(10))
    assert_error(await client.get(f"/v2/{repo}/blobs/sha256:XYZ"), 400, "DIGEST_INVALID")

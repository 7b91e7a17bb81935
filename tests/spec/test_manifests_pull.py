"""Pulling manifests: HEAD, content negotiation, unknown manifests, invalid references.

OCI distribution spec v1.1, "Pulling manifests", "Checking if content exists in the registry"
(end-3) and content-negotiation.md (RFC 7231 Accept).
"""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    get_manifest,
    index_manifest,
    push_image,
    push_manifest,
    to_bytes,
)

HEADERS = ("content-type", "content-length", "docker-content-digest")


@pytest.mark.parametrize("docker", [False, True])
async def test_head_headers_equal_get_headers(client: httpx.AsyncClient, repo: str, docker: bool) -> None:
    image = await push_image(client, repo, "v1", docker=docker)
    accept = {"Accept": image.media_type}
    for ref in ("v1", image.digest):
        get = await client.get(f"/v2/{repo}/manifests/{ref}", headers=accept)
        head = await client.head(f"/v2/{repo}/manifests/{ref}", headers=accept)
        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert {h: head.headers.get(h) for h in HEADERS} == {h: get.headers.get(h) for h in HEADERS}
        assert get.headers["content-length"] == str(len(image.body))


async def test_accept_as_several_headers(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "v1")
    headers = [
        ("Accept", DOCKER_MANIFEST),
        ("Accept", DOCKER_LIST),
        ("Accept", OCI_MANIFEST),
        ("Accept", OCI_INDEX),
    ]
    r = await client.get(f"/v2/{repo}/manifests/v1", headers=headers)
    assert r.status_code == 200
    assert r.content == image.body
    assert r.headers["content-type"] == OCI_MANIFEST


async def test_accept_comma_list_with_q_values(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "v1", docker=True)
    accept = f"{OCI_MANIFEST};q=0.9, {DOCKER_MANIFEST};q=0.5, {OCI_INDEX}, */*;q=0.1"
    r = await client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
    assert r.status_code == 200
    assert r.content == image.body
    assert r.headers["content-type"] == DOCKER_MANIFEST


async def test_index_is_served_as_index(client: httpx.AsyncClient, repo: str) -> None:
    child = await push_image(client, repo)
    body = to_bytes(index_manifest([child.descriptor(platform={"architecture": "amd64", "os": "linux"})]))
    assert (await push_manifest(client, repo, "multi", body, OCI_INDEX)).status_code == 201
    r = await client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert r.status_code == 200
    assert r.headers["content-type"] == OCI_INDEX
    assert r.content == body


@pytest.mark.berth_only  # Distribution 2.8 hides OCI manifests from clients sending no Accept
async def test_get_without_accept_serves_manifest_as_stored(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "v1")
    r = await client.get(f"/v2/{repo}/manifests/v1")
    assert r.status_code == 200
    assert r.content == image.body
    assert r.headers["content-type"] == OCI_MANIFEST


async def test_unknown_tag_is_404_manifest_unknown(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "v1")
    assert_error(await get_manifest(client, repo, "nope"), 404, "MANIFEST_UNKNOWN")
    head = await client.head(f"/v2/{repo}/manifests/nope")
    assert head.status_code == 404
    assert head.content == b""


async def test_unknown_digest_is_404_manifest_unknown(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "v1")
    assert_error(await get_manifest(client, repo, "sha256:" + "5" * 64), 404, "MANIFEST_UNKNOWN")


async def test_manifest_of_unknown_repository_is_404(client: httpx.AsyncClient, repo: str) -> None:
    assert_error(await get_manifest(client, repo, "v1"), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


async def test_tag_of_128_characters_is_valid(client: httpx.AsyncClient, repo: str) -> None:
    tag = "T" + "a" * 127
    image = await push_image(client, repo, tag)
    r = await get_manifest(client, repo, tag)
    assert r.status_code == 200
    assert r.content == image.body


@pytest.mark.berth_only  # Distribution 2.8 answers a plain-text 404 (no route) for invalid tags
@pytest.mark.parametrize("tag", ["-bad", ".bad", "a" * 129, "bad:tag", "sha256:abc"])
async def test_invalid_tag_is_400(client: httpx.AsyncClient, repo: str, tag: str) -> None:
    """A <reference> MUST be a digest or match ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``."""
    image = await push_image(client, repo, "v1")
    r = await push_manifest(client, repo, tag, image.body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_INVALID", "DIGEST_INVALID")

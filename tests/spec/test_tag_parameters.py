"""Tags pushed with a manifest by digest: ``PUT /v2/<name>/manifests/<digest>?tag=a&tag=b``.

OCI distribution spec, main branch, "Pushing Manifests": "When pushing a manifest by digest,
the registry MAY support the pushing of tags specified by addition of ``tag`` query
parameters. If a registry supports this, it: SHOULD support pushing at least 10 tags per
request; MAY return a ``414 Request-URI Too Long`` status if too many tags are included; MUST
include an ``OCI-Tag`` response header, in accordance with RFC 9110 (section 5) semantics, for
each accepted tag." It is also how a tag can point at a manifest of a non-canonical digest
algorithm (sha512). Berth accepts up to 100 tags per request, all or none.
"""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    descriptor,
    digest_of,
    get_manifest,
    image_manifest,
    push_blob,
    push_image,
    random_blob,
    to_bytes,
)

pytestmark = pytest.mark.berth_only  # Distribution 2.8 ignores the tag parameters (201, no tags)


def oci_tags(response: httpx.Response) -> list[str]:
    """Every tag named by the ``OCI-Tag`` headers (repeated or comma-separated, RFC 9110 §5.3)."""
    return [
        t.strip() for value in response.headers.get_list("oci-tag") for t in value.split(",") if t.strip()
    ]


async def new_manifest(client: httpx.AsyncClient, repo: str) -> bytes:
    """Upload a config and a layer; the bytes of an image manifest referencing them."""
    config, layer = b'{"architecture":"amd64","os":"linux"}', random_blob(64)
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    return to_bytes(image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)]))


async def put_with_tags(
    client: httpx.AsyncClient, repo: str, body: bytes, tags: list[str], algorithm: str = "sha256"
) -> httpx.Response:
    digest = digest_of(body, algorithm)
    params: list[tuple[str, str | int | float | bool | None]] = [("tag", t) for t in tags]
    return await client.put(
        f"/v2/{repo}/manifests/{digest}", params=params, content=body, headers={"Content-Type": OCI_MANIFEST}
    )


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_tags_are_created_and_echoed(client: httpx.AsyncClient, repo: str, algorithm: str) -> None:
    body = await new_manifest(client, repo)
    r = await put_with_tags(client, repo, body, ["a", "b", "1.2.3"], algorithm)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest_of(body, algorithm)
    assert sorted(oci_tags(r)) == ["1.2.3", "a", "b"]
    for tag in ("a", "b", "1.2.3"):
        got = await get_manifest(client, repo, tag)
        assert got.status_code == 200
        assert got.content == body
        assert got.headers["docker-content-digest"] == digest_of(body, algorithm)
    listed = (await client.get(f"/v2/{repo}/tags/list")).json()["tags"]
    assert listed == ["1.2.3", "a", "b"]


async def test_at_least_ten_tags_in_one_request(client: httpx.AsyncClient, repo: str) -> None:
    body = await new_manifest(client, repo)
    tags = [f"t{i:03}" for i in range(100)]
    r = await put_with_tags(client, repo, body, tags)
    assert r.status_code == 201, r.text
    assert sorted(oci_tags(r)) == tags


async def test_too_many_tags_is_414_and_nothing_is_stored(client: httpx.AsyncClient, repo: str) -> None:
    body = await new_manifest(client, repo)
    r = await put_with_tags(client, repo, body, [f"t{i}" for i in range(101)])
    assert_error(r, 414, "UNSUPPORTED")
    assert (await get_manifest(client, repo, digest_of(body))).status_code == 404


@pytest.mark.parametrize("bad", ["-bad", ".x", "a" * 129, "a:b", ""])
async def test_invalid_tag_is_400_and_nothing_is_stored(
    client: httpx.AsyncClient, repo: str, bad: str
) -> None:
    body = await new_manifest(client, repo)
    r = await put_with_tags(client, repo, body, ["good", bad])
    assert_error(r, 400, "MANIFEST_INVALID")
    assert (await get_manifest(client, repo, digest_of(body))).status_code == 404
    assert (await get_manifest(client, repo, "good")).status_code == 404


async def test_existing_tag_is_moved(client: httpx.AsyncClient, repo: str) -> None:
    """The caller here holds Overwrite; without it a move is 403 (tests/integration)."""
    old = await push_image(client, repo, "latest")
    body = await new_manifest(client, repo)
    r = await put_with_tags(client, repo, body, ["latest", "latest", "v2"])
    assert r.status_code == 201, r.text
    assert sorted(oci_tags(r)) == ["latest", "v2"]
    assert (await get_manifest(client, repo, "latest")).content == body
    assert (await get_manifest(client, repo, old.digest)).content == old.body


async def test_push_by_tag_with_tag_parameters_sets_all(client: httpx.AsyncClient, repo: str) -> None:
    body = await new_manifest(client, repo)
    r = await client.put(
        f"/v2/{repo}/manifests/main",
        params=[("tag", "extra")],
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201, r.text
    assert sorted(oci_tags(r)) == ["extra", "main"]
    for tag in ("main", "extra"):
        assert (await get_manifest(client, repo, tag)).content == body


async def test_push_without_tag_parameters_sends_no_oci_tag(client: httpx.AsyncClient, repo: str) -> None:
    body = await new_manifest(client, repo)
    r = await put_with_tags(client, repo, body, [])
    assert r.status_code == 201
    assert "oci-tag" not in r.headers

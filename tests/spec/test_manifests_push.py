"""Pushing manifests of every common media type; exact bytes; media type from Content-Type.

OCI distribution spec v1.1, "Pushing Manifests", "Pushing Manifests with Subject" (end-7) and
"Pulling manifests" (end-3) for reading them back.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.spec.helpers import (
    DOCKER_LIST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    descriptor,
    digest_of,
    get_manifest,
    image_manifest,
    index_manifest,
    location_path,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    to_bytes,
)


async def assert_served_as_pushed(
    client: httpx.AsyncClient, repo: str, reference: str, body: bytes, media_type: str
) -> None:
    """GET and HEAD of ``reference`` return ``body`` byte for byte with its headers."""
    r = await get_manifest(client, repo, reference)
    assert r.status_code == 200, r.text
    assert r.content == body
    assert r.headers["content-type"] == media_type
    assert r.headers["docker-content-digest"] == digest_of(body)
    assert r.headers["content-length"] == str(len(body))


async def test_push_oci_image_manifest_by_tag(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "v1")
    r = await push_manifest(client, repo, "v1", image.body, OCI_MANIFEST)  # same bytes again
    assert r.status_code == 201
    assert r.headers["docker-content-digest"] == image.digest
    assert location_path(r.headers["location"]) in (
        f"/v2/{repo}/manifests/{image.digest}",
        f"/v2/{repo}/manifests/v1",
    )
    await assert_served_as_pushed(client, repo, "v1", image.body, OCI_MANIFEST)
    await assert_served_as_pushed(client, repo, image.digest, image.body, OCI_MANIFEST)


async def test_push_by_digest(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo)
    await assert_served_as_pushed(client, repo, image.digest, image.body, OCI_MANIFEST)


async def test_exact_bytes_are_kept(client: httpx.AsyncClient, repo: str) -> None:
    """Odd whitespace and key order survive: the registry never re-serialises."""
    image = await push_image(client, repo, "odd", odd=True)
    assert image.body.startswith(b"  \n{")
    await assert_served_as_pushed(client, repo, "odd", image.body, OCI_MANIFEST)
    await assert_served_as_pushed(client, repo, image.digest, image.body, OCI_MANIFEST)


async def test_push_oci_index_after_children(client: httpx.AsyncClient, repo: str) -> None:
    amd = await push_image(client, repo)
    arm = await push_image(client, repo)
    doc = index_manifest(
        [
            amd.descriptor(platform={"architecture": "amd64", "os": "linux"}),
            arm.descriptor(platform={"architecture": "arm64", "os": "linux"}),
        ]
    )
    body = to_bytes(doc, odd=True)
    r = await push_manifest(client, repo, "multi", body, OCI_INDEX)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest_of(body)
    await assert_served_as_pushed(client, repo, "multi", body, OCI_INDEX)


async def test_push_docker_schema2_and_manifest_list(client: httpx.AsyncClient, repo: str) -> None:
    image = await push_image(client, repo, "docker", docker=True, odd=True)
    await assert_served_as_pushed(client, repo, "docker", image.body, image.media_type)
    body = to_bytes(
        index_manifest(
            [image.descriptor(platform={"architecture": "amd64", "os": "linux"})], media_type=DOCKER_LIST
        )
    )
    r = await push_manifest(client, repo, "list", body, DOCKER_LIST)
    assert r.status_code == 201, r.text
    await assert_served_as_pushed(client, repo, "list", body, DOCKER_LIST)
    assert (await push_manifest(client, repo, digest_of(body), body, DOCKER_LIST)).status_code == 201
    await assert_served_as_pushed(client, repo, digest_of(body), body, DOCKER_LIST)
    await assert_served_as_pushed(client, repo, image.digest, image.body, image.media_type)


async def test_push_artifact_with_empty_config(client: httpx.AsyncClient, repo: str) -> None:
    await push_blob(client, repo, b"{}")
    layer = random_blob(100)
    await push_blob(client, repo, layer)
    doc = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        [descriptor("application/vnd.example.data.v1", layer)],
        artifact_type="application/vnd.example.artifact.v1",
        annotations={"org.example.note": "artifact"},
    )
    body = to_bytes(doc)
    r = await push_manifest(client, repo, "artifact", body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    await assert_served_as_pushed(client, repo, "artifact", body, OCI_MANIFEST)


async def test_push_artifact_with_custom_config_media_type(client: httpx.AsyncClient, repo: str) -> None:
    config = json.dumps({"chart": "demo", "version": "1.0.0"}).encode()
    await push_blob(client, repo, config)
    doc = image_manifest(descriptor("application/vnd.cncf.helm.config.v1+json", config), [])
    body = to_bytes(doc)
    r = await push_manifest(client, repo, "chart", body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    await assert_served_as_pushed(client, repo, "chart", body, OCI_MANIFEST)


async def test_media_type_from_content_type_when_body_has_none(client: httpx.AsyncClient, repo: str) -> None:
    """umoci writes manifests without ``mediaType``: the Content-Type of the PUT decides."""
    config, layer = random_blob(20), random_blob(30)
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    doc = image_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config),
        [descriptor(OCI_LAYER, layer)],
        media_type=None,
    )
    body = to_bytes(doc)
    r = await push_manifest(client, repo, "nomediatype", body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    await assert_served_as_pushed(client, repo, "nomediatype", body, OCI_MANIFEST)


async def test_manifest_referencing_unknown_blob_is_rejected(client: httpx.AsyncClient, repo: str) -> None:
    """MAY reject; when rejected the code MUST be MANIFEST_BLOB_UNKNOWN (400 or 404 in practice)."""
    config = random_blob(20)
    await push_blob(client, repo, config)
    doc = image_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config), [descriptor(OCI_LAYER, b"?")]
    )
    r = await push_manifest(client, repo, "broken", to_bytes(doc), OCI_MANIFEST)
    assert_error(r, (400, 404), "MANIFEST_BLOB_UNKNOWN")
    assert (await get_manifest(client, repo, "broken")).status_code == 404


async def test_index_referencing_unknown_manifest_is_rejected(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "base")
    doc = index_manifest([{"mediaType": OCI_MANIFEST, "digest": "sha256:" + "3" * 64, "size": 3}])
    r = await push_manifest(client, repo, "broken", to_bytes(doc), OCI_INDEX)
    assert_error(r, (400, 404), "MANIFEST_BLOB_UNKNOWN")


async def test_subject_may_reference_a_missing_manifest(client: httpx.AsyncClient, repo: str) -> None:
    """A registry MUST accept a manifest whose ``subject`` does not exist (yet)."""
    subject = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "4" * 64, "size": 100}
    image = await push_image(client, repo, subject=subject, artifact_type="application/vnd.example.sig.v1")
    await assert_served_as_pushed(client, repo, image.digest, image.body, OCI_MANIFEST)


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'{"schemaVersion": 2, "layers": "nope"}'])
async def test_invalid_manifest_is_manifest_invalid(
    client: httpx.AsyncClient, repo: str, body: bytes
) -> None:
    await push_image(client, repo, "base")
    assert_error(await push_manifest(client, repo, "bad", body, OCI_MANIFEST), 400, "MANIFEST_INVALID")


async def test_put_by_digest_that_does_not_match_is_digest_invalid(
    client: httpx.AsyncClient, repo: str
) -> None:
    image = await push_image(client, repo, "base")
    wrong = digest_of(image.body + b" ")
    assert_error(await push_manifest(client, repo, wrong, image.body, OCI_MANIFEST), 400, "DIGEST_INVALID")


@pytest.mark.berth_only  # the referrers API (and so OCI-Subject) is new in spec v1.1
async def test_push_with_subject_answers_oci_subject(client: httpx.AsyncClient, repo: str) -> None:
    base = await push_image(client, repo, "base")
    doc = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        [descriptor(OCI_EMPTY, b"{}")],
        artifact_type="application/vnd.example.sbom.v1",
        subject=base.descriptor(),
    )
    await push_blob(client, repo, b"{}")
    body = to_bytes(doc)
    r = await push_manifest(client, repo, digest_of(body), body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    assert r.headers["oci-subject"] == base.digest


@pytest.mark.berth_only  # Distribution 2.8 has no manifest size limit answer
async def test_oversized_manifest_is_413(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "base")
    body = to_bytes({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"pad": "x" * (5 << 20)}})
    r = await push_manifest(client, repo, "huge", body, OCI_MANIFEST)
    assert r.status_code == 413

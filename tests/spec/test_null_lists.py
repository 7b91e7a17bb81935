"""JSON ``null`` where a Go client's empty list or map becomes null.

Go's ``encoding/json`` marshals a nil slice or map as ``null`` unless the field says
``omitempty``: ``crane index filter`` pushes ``"manifests": null`` when no child matches, and
other Go tools can write ``"layers": null``. OCI image spec v1.1 ("Image Index", "Image
Manifest") requires ``manifests``/``layers`` to be present; Distribution (Go) reads null as an
empty list and accepts the push. So does Berth — keeping the bytes exactly as pushed (distribution
spec v1.1.1, "Pushing Manifests") — and the same for every optional array or map: annotations,
urls, platform features.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.spec.helpers import (
    DOCKER_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    descriptor,
    digest_of,
    get_manifest,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
)


async def push_and_read_back(client: httpx.AsyncClient, repo: str, body: bytes, media_type: str) -> None:
    """PUT by tag and by digest: 201, and both GETs serve exactly ``body``."""
    r = await push_manifest(client, repo, "v1", body, media_type)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest_of(body)
    for ref in ("v1", digest_of(body)):
        got = await get_manifest(client, repo, ref)
        assert got.status_code == 200
        assert got.content == body
        assert got.headers["content-type"] == media_type


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
async def test_index_with_null_manifests(client: httpx.AsyncClient, repo: str, media_type: str) -> None:
    """What ``crane index filter`` pushes when no child matches."""
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": None}).encode()
    await push_and_read_back(client, repo, body, media_type)


async def test_image_manifest_with_null_layers(client: httpx.AsyncClient, repo: str) -> None:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":null}}'
    await push_blob(client, repo, config)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": None,
    }
    await push_and_read_back(client, repo, json.dumps(doc).encode(), OCI_MANIFEST)


async def test_null_optional_fields_everywhere(client: httpx.AsyncClient, repo: str) -> None:
    """annotations, urls, artifactType, subject and platform features/os.features as null."""
    config, layer = b'{"architecture":"arm64","os":"linux"}', random_blob(32)
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    image = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": None,
        "config": {**descriptor(OCI_CONFIG, config), "annotations": None, "urls": None},
        "layers": [{**descriptor(OCI_LAYER, layer), "annotations": None, "urls": None, "data": None}],
        "subject": None,
        "annotations": None,
    }
    image_body = json.dumps(image).encode()
    await push_and_read_back(client, repo, image_body, OCI_MANIFEST)
    platform = {
        "architecture": "arm64",
        "os": "linux",
        "os.features": None,
        "features": None,
        "variant": None,
    }
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**descriptor(OCI_MANIFEST, image_body), "platform": platform, "annotations": None}],
        "annotations": None,
        "subject": None,
    }
    r = await push_manifest(client, repo, "idx", json.dumps(index).encode(), OCI_INDEX)
    assert r.status_code == 201, r.text


async def test_referrers_of_a_subject_with_null_annotations(client: httpx.AsyncClient, repo: str) -> None:
    """A referrer whose annotations are null is listed without annotations."""
    subject = await push_image(client, repo, "base")
    config = b"{}"
    await push_blob(client, repo, config)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": descriptor("application/vnd.oci.empty.v1+json", config),
        "layers": None,
        "subject": subject.descriptor(),
        "annotations": None,
    }
    body = json.dumps(doc).encode()
    assert (await push_manifest(client, repo, digest_of(body), body, OCI_MANIFEST)).status_code == 201


@pytest.mark.berth_only  # Distribution 2.8 accepts an index without manifests (it is required)
async def test_absent_manifests_is_still_invalid(client: httpx.AsyncClient, repo: str) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX}).encode()
    assert_error(await push_manifest(client, repo, "v1", body, OCI_INDEX), 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("field", ["manifests", "layers"])
async def test_non_list_is_still_invalid(client: httpx.AsyncClient, repo: str, field: str) -> None:
    config = b"{}"
    await push_blob(client, repo, config)
    if field == "manifests":
        doc: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}}
        media_type = OCI_INDEX
    else:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": 7,
        }
        media_type = OCI_MANIFEST
    r = await push_manifest(client, repo, "v1", json.dumps(doc).encode(), media_type)
    assert_error(r, 400, "MANIFEST_INVALID")

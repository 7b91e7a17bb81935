"""The referrers API (new in v1.1; Distribution 2.8 lacks it, so every test is berth_only).

OCI distribution spec v1.1, "Listing Referrers" (end-12a, end-12b) and "Pushing Manifests with
Subject".
"""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Json,
    descriptor,
    digest_of,
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    to_bytes,
)

pytestmark = pytest.mark.berth_only
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


async def push_referrer(
    client: httpx.AsyncClient,
    repo: str,
    subject: Json,
    artifact_type: str | None,
    config_type: str = OCI_EMPTY,
) -> Json:
    """Push an artifact manifest whose subject is ``subject``; returns its expected descriptor
    in a referrers list (with artifactType and annotations)."""
    layer = random_blob(32)
    await push_blob(client, repo, b"{}")
    await push_blob(client, repo, layer)
    annotations = {
        "org.example.kind": artifact_type or "none",
        "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
    }
    doc = image_manifest(
        descriptor(config_type, b"{}"),
        [descriptor("application/vnd.example.blob", layer)],
        artifact_type=artifact_type,
        subject=subject,
        annotations=annotations,
    )
    body = to_bytes(doc)
    r = await push_manifest(client, repo, digest_of(body), body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest_of(body),
        "size": len(body),
        "artifactType": artifact_type or config_type,
        "annotations": annotations,
    }


def summary(manifests: list[Json]) -> dict[str, Json]:
    """Referrer descriptors by digest, keeping only the fields the spec requires."""
    keys = ("mediaType", "digest", "size", "artifactType", "annotations")
    return {m["digest"]: {k: m[k] for k in keys if k in m} for m in manifests}


async def get_referrers(client: httpx.AsyncClient, repo: str, digest: str, **params: str) -> httpx.Response:
    """GET ``/v2/<repo>/referrers/<digest>`` and check it is an OCI image index."""
    r = await client.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == OCI_INDEX
    body = r.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return r


async def test_referrers_lists_artifacts_with_type_and_annotations(
    client: httpx.AsyncClient, repo: str
) -> None:
    base = await push_image(client, repo, "base")
    sbom = await push_referrer(client, repo, base.descriptor(), SBOM)
    sig = await push_referrer(client, repo, base.descriptor(), SIGNATURE)
    await push_image(client, repo, "unrelated")
    r = await get_referrers(client, repo, base.digest)
    assert summary(r.json()["manifests"]) == summary([sbom, sig])


async def test_artifact_type_defaults_to_config_media_type(client: httpx.AsyncClient, repo: str) -> None:
    base = await push_image(client, repo, "base")
    ref = await push_referrer(
        client, repo, base.descriptor(), None, config_type="application/vnd.example.cfg.v1+json"
    )
    r = await get_referrers(client, repo, base.digest)
    assert summary(r.json()["manifests"]) == summary([ref])
    assert r.json()["manifests"][0]["artifactType"] == "application/vnd.example.cfg.v1+json"


async def test_index_referrer_without_artifact_type_omits_it(client: httpx.AsyncClient, repo: str) -> None:
    base = await push_image(client, repo, "base")
    child = await push_image(client, repo)
    body = to_bytes(index_manifest([child.descriptor()], subject=base.descriptor(), annotations={"k": "v"}))
    assert (await push_manifest(client, repo, digest_of(body), body, OCI_INDEX)).status_code == 201
    (entry,) = (await get_referrers(client, repo, base.digest)).json()["manifests"]
    assert entry["digest"] == digest_of(body)
    assert entry["mediaType"] == OCI_INDEX
    assert "artifactType" not in entry
    assert entry["annotations"] == {"k": "v"}


async def test_artifact_type_filter(client: httpx.AsyncClient, repo: str) -> None:
    base = await push_image(client, repo, "base")
    sbom = await push_referrer(client, repo, base.descriptor(), SBOM)
    await push_referrer(client, repo, base.descriptor(), SIGNATURE)
    r = await get_referrers(client, repo, base.digest, artifactType=SBOM)
    assert summary(r.json()["manifests"]) == summary([sbom])
    assert "artifactType" in [f.strip() for f in r.headers["oci-filters-applied"].split(",")]


async def test_referrer_pushed_before_its_subject(client: httpx.AsyncClient, repo: str) -> None:
    config = random_blob(16)
    await push_blob(client, repo, config)
    body = to_bytes(image_manifest(descriptor("application/vnd.oci.image.config.v1+json", config), []))
    subject: Json = {"mediaType": OCI_MANIFEST, "digest": digest_of(body), "size": len(body)}
    ref = await push_referrer(client, repo, subject, SBOM)
    assert (await push_manifest(client, repo, "late", body, OCI_MANIFEST)).status_code == 201
    r = await get_referrers(client, repo, digest_of(body))
    assert summary(r.json()["manifests"]) == summary([ref])


async def test_unknown_subject_gives_empty_index(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "base")
    r = await get_referrers(client, repo, "sha256:" + "7" * 64)
    assert r.json()["manifests"] == []


async def test_deleted_referrer_disappears(client: httpx.AsyncClient, repo: str) -> None:
    base = await push_image(client, repo, "base")
    ref = await push_referrer(client, repo, base.descriptor(), SBOM)
    assert (await client.delete(f"/v2/{repo}/manifests/{ref['digest']}")).status_code == 202
    assert (await get_referrers(client, repo, base.digest)).json()["manifests"] == []


@pytest.mark.parametrize("digest", ["sha256:XYZ", "notadigest", "sha256:" + "a" * 10])
async def test_invalid_digest_is_400(client: httpx.AsyncClient, repo: str, digest: str) -> None:
    await push_image(client, repo, "base")
    r = await client.get(f"/v2/{repo}/referrers/{digest}")
    assert r.status_code == 400
    assert r.json()["errors"]

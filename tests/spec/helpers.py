"""Helpers of the OCI Distribution spec v1.1 conformance suite: blobs, manifests, assertions.

Everything here speaks plain HTTP through an ``httpx.AsyncClient`` whose base_url is the
registry root. Descriptors and manifests are plain dicts shaped as in the OCI image spec v1.1
(descriptor: ``{"mediaType", "digest", "size", ...}``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT_ALL = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
Json = dict[str, Any]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The OCI digest ``"<algorithm>:<hex>"`` of ``data`` (sha256 or sha512)."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def random_blob(size: int = 1024) -> bytes:
    """``size`` random bytes: a blob no registry has seen before."""
    return os.urandom(size)


def descriptor(media_type: str, data: bytes, **extra: Any) -> Json:
    """An OCI descriptor of ``data`` with ``media_type`` and optional extra fields."""
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def with_query(location: str, **params: str) -> httpx.URL:
    """``location`` with ``params`` added to (not replacing) its query string.

    Upload locations are opaque and may carry significant query parameters (Distribution's
    ``_state``); OCI distribution spec v1.1, "POST then PUT".
    """
    return httpx.URL(location).copy_merge_params(params)


def error_codes(response: httpx.Response) -> list[str]:
    """The ``code`` of each entry of an ``{"errors": [...]}`` body; ``[]`` if there is none."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [str(e.get("code")) for e in errors or [] if isinstance(e, dict)]


def assert_error(response: httpx.Response, status: int | tuple[int, ...], *codes: str) -> None:
    """Assert ``response`` has one of ``status`` and an errors body holding one of ``codes``.

    OCI distribution spec v1.1, "Error Codes". A HEAD response has no body, so only the status
    is checked for it.
    """
    statuses = status if isinstance(status, tuple) else (status,)
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code in statuses, f"{where}: {response.status_code} {response.text[:300]}"
    if response.request.method == "HEAD":
        assert response.content == b""
        return
    found = error_codes(response)
    assert any(c in found for c in codes), f"{where}: expected one of {codes}, got {response.text[:300]}"


def assert_digest_matches(header: str | None, data: bytes) -> None:
    """A ``Docker-Content-Digest`` value is a valid digest of ``data`` in its own algorithm."""
    assert header, "Docker-Content-Digest missing"
    algorithm, _, _ = header.partition(":")
    assert header == digest_of(data, algorithm)


def location_path(location: str) -> str:
    """The path of an absolute or relative Location header value."""
    return urlsplit(location).path


async def assert_blob_absent(client: httpx.AsyncClient, repo: str, *digests: str) -> None:
    """HEAD of each digest in ``repo`` answers 404."""
    for digest in digests:
        r = await client.head(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 404, digest


async def assert_blob_content(client: httpx.AsyncClient, repo: str, digest: str, data: bytes) -> None:
    """GET of ``digest`` in ``repo`` answers 200 with exactly ``data``."""
    r = await client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data


async def start_upload(client: httpx.AsyncClient, repo: str) -> httpx.Response:
    """POST ``/v2/<repo>/blobs/uploads/`` (spec: end-4a) and assert 202 with a Location."""
    r = await client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202, r.text
    assert r.headers.get("location")
    return r


async def push_blob(client: httpx.AsyncClient, repo: str, data: bytes, algorithm: str = "sha256") -> str:
    """Push ``data`` monolithically (POST then PUT ``?digest=``); returns its digest.

    Raises:
        AssertionError: if the registry does not answer 201.
    """
    digest = digest_of(data, algorithm)
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.put(
        with_query(location, digest=digest),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    return digest


async def push_blob_chunked(client: httpx.AsyncClient, repo: str, data: bytes, chunk: int) -> str:
    """Push ``data`` in PATCH chunks of ``chunk`` bytes with ``Content-Range``, then PUT.

    OCI distribution spec v1.1, "Pushing a blob in chunks". Returns the digest.
    """
    location = (await start_upload(client, repo)).headers["location"]
    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        r = await client.patch(location, content=part, headers=chunk_headers(start, part))
        assert r.status_code == 202, r.text
        assert r.headers["range"] == f"0-{start + len(part) - 1}"
        location = r.headers["location"]
    digest = digest_of(data)
    r = await client.put(with_query(location, digest=digest))
    assert r.status_code == 201, r.text
    return digest


def chunk_headers(start: int, part: bytes) -> dict[str, str]:
    """Headers of a chunk PATCH: Content-Type, inclusive Content-Range, Content-Length."""
    return {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{start}-{start + len(part) - 1}",
        "Content-Length": str(len(part)),
    }


async def push_manifest(
    client: httpx.AsyncClient, repo: str, reference: str, body: bytes, media_type: str
) -> httpx.Response:
    """PUT ``body`` to ``/v2/<repo>/manifests/<reference>`` with ``Content-Type: media_type``."""
    return await client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )


def image_manifest(
    config: Json,
    layers: list[Json],
    *,
    media_type: str | None = OCI_MANIFEST,
    artifact_type: str | None = None,
    subject: Json | None = None,
    annotations: dict[str, str] | None = None,
) -> Json:
    """An image manifest (OCI, or Docker schema2 with ``media_type=DOCKER_MANIFEST``).

    ``media_type=None`` leaves out the optional ``mediaType`` field (as umoci does).
    """
    doc: Json = {"schemaVersion": 2}
    if media_type:
        doc["mediaType"] = media_type
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config
    doc["layers"] = layers
    if subject:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return doc


def index_manifest(
    manifests: list[Json],
    *,
    media_type: str = OCI_INDEX,
    artifact_type: str | None = None,
    subject: Json | None = None,
    annotations: dict[str, str] | None = None,
) -> Json:
    """An image index (OCI, or a Docker manifest list with ``media_type=DOCKER_LIST``)."""
    doc: Json = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return doc


def to_bytes(doc: Json, *, odd: bool = False) -> bytes:
    """Serialise a manifest; ``odd=True`` gives unusual bytes (reversed keys, tabs, CRLF-free
    odd indentation, trailing newlines) that a registry must keep exactly as pushed."""
    if not odd:
        return json.dumps(doc, separators=(",", ":")).encode()
    reordered = dict(reversed(list(doc.items())))
    return b"  \n" + json.dumps(reordered, indent="\t ").encode() + b"\n\n"


@dataclass
class Image:
    """An image pushed by :func:`push_image`: its manifest bytes, digest and blobs."""

    body: bytes
    digest: str
    media_type: str
    config: bytes
    layers: list[bytes]

    def descriptor(self, **extra: Any) -> Json:
        """The descriptor of this image's manifest."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body), **extra}


async def push_image(
    client: httpx.AsyncClient,
    repo: str,
    reference: str | None = None,
    *,
    docker: bool = False,
    odd: bool = False,
    **manifest_fields: Any,
) -> Image:
    """Push a config, one random layer and an image manifest (by tag, or by digest if
    ``reference`` is None). Extra keyword arguments go to :func:`image_manifest`.

    Raises:
        AssertionError: if the manifest PUT does not answer 201.
    """
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": random_blob(8).hex()}).encode()
    layer = random_blob(256)
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    doc = image_manifest(
        descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer)],
        media_type=media_type,
        **manifest_fields,
    )
    body = to_bytes(doc, odd=odd)
    digest = digest_of(body)
    r = await push_manifest(client, repo, reference or digest, body, media_type)
    assert r.status_code == 201, r.text
    return Image(body, digest, media_type, config, [layer])


async def get_manifest(
    client: httpx.AsyncClient, repo: str, reference: str, accept: str = ACCEPT_ALL
) -> httpx.Response:
    """GET a manifest, accepting every manifest media type by default."""
    return await client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})

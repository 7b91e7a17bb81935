"""Builders of valid manifest JSON documents for the manifest tests."""

from __future__ import annotations

from typing import Any

from berth_common.oci import mediatypes as mt
from berth_common.oci.digest import Digest

D1, D2, D3, D4 = (Digest.of(bytes([i])) for i in range(4))


def desc(media_type: str, digest: Digest, size: int = 10, **extra: Any) -> dict[str, Any]:
    """A descriptor JSON object."""
    return {"mediaType": media_type, "digest": str(digest), "size": size, **extra}


def image(media_type: str | None = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    """An image manifest with config D1 and layers D2, D3."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "config": desc(mt.OCI_CONFIG, D1),
        "layers": [desc(mt.OCI_LAYER_GZIP, D2), desc(mt.OCI_LAYER_GZIP, D3)],
        **extra,
    }
    if media_type:
        doc["mediaType"] = media_type
    return doc


def index(media_type: str | None = mt.OCI_INDEX, **extra: Any) -> dict[str, Any]:
    """An index with two platform manifests D1, D2."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [
            desc(mt.OCI_MANIFEST, D1, platform={"architecture": "amd64", "os": "linux"}),
            desc(mt.OCI_MANIFEST, D2, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ],
        **extra,
    }
    if media_type:
        doc["mediaType"] = media_type
    return doc

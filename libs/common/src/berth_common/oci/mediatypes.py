"""Media types of manifests, configs and layers.

Sources: OCI image spec v1.1, "Media Types" (media-types.md) and "Guidance for an Empty
Descriptor"; Docker "Image Manifest Version 2, Schema 2" (Distribution docs).
"""

from __future__ import annotations

# --- OCI image spec v1.1 -------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Deprecated by the image spec, still found in the wild (e.g. Windows base layers).
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
# The empty JSON object ``{}`` used as config (and layer) of artifacts.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
OCI_EMPTY_SIZE = 2

# --- Docker image manifest v2 --------------------------------------------------------------
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
# Schema 1: signed JSON web signatures; Berth does not accept these.
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# --- sets ------------------------------------------------------------------------------------
INDEX_MEDIA_TYPES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""Manifests whose children are other manifests (``manifests`` array)."""

IMAGE_MANIFEST_MEDIA_TYPES: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
"""Manifests with a ``config`` and ``layers`` (blobs)."""

MANIFEST_MEDIA_TYPES: frozenset[str] = INDEX_MEDIA_TYPES | IMAGE_MANIFEST_MEDIA_TYPES
"""Every manifest media type Berth stores and serves."""

SCHEMA1_MEDIA_TYPES: frozenset[str] = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
"""Docker schema 1 manifest types: recognised only to reject them with a clear message."""

NONDISTRIBUTABLE_LAYER_MEDIA_TYPES: frozenset[str] = frozenset(
    {
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        DOCKER_FOREIGN_LAYER,
    }
)
"""Layer types whose content is usually fetched from the descriptor's ``urls``."""

# Content-Type values that say "JSON" but nothing about which manifest type it is.
GENERIC_CONTENT_TYPES: frozenset[str] = frozenset({"application/json", "application/octet-stream"})


def base_media_type(content_type: str | None) -> str:
    """``"Type/Sub ; charset=utf-8"`` -> ``"type/sub"``: parameters stripped, lowercased.

    Media types are case-insensitive (RFC 6838 §4.2); the registry SHOULD ignore parameters on
    ``Content-Type`` (OCI distribution spec v1.1, "Pushing Manifests"). ``None`` gives ``""``.
    """
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()

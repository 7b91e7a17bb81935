"""Unit tests for berth_common.oci.mediatypes (OCI image spec v1.1, Media Types)."""

from __future__ import annotations

import pytest

from berth_common.oci import mediatypes as mt
from berth_common.oci.digest import Digest


def test_manifest_sets() -> None:
    assert {
        mt.OCI_MANIFEST,
        mt.OCI_INDEX,
        mt.DOCKER_MANIFEST,
        mt.DOCKER_MANIFEST_LIST,
    } == mt.MANIFEST_MEDIA_TYPES
    assert {mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST} == mt.INDEX_MEDIA_TYPES
    assert mt.INDEX_MEDIA_TYPES < mt.MANIFEST_MEDIA_TYPES
    assert not mt.SCHEMA1_MEDIA_TYPES & mt.MANIFEST_MEDIA_TYPES
    assert mt.IMAGE_MANIFEST_MEDIA_TYPES.isdisjoint(mt.INDEX_MEDIA_TYPES)


@pytest.mark.parametrize(
    ("constant", "value"),
    [
        (mt.OCI_MANIFEST, "application/vnd.oci.image.manifest.v1+json"),
        (mt.OCI_INDEX, "application/vnd.oci.image.index.v1+json"),
        (mt.OCI_CONFIG, "application/vnd.oci.image.config.v1+json"),
        (mt.OCI_LAYER_GZIP, "application/vnd.oci.image.layer.v1.tar+gzip"),
        (mt.OCI_LAYER_ZSTD, "application/vnd.oci.image.layer.v1.tar+zstd"),
        (mt.OCI_EMPTY, "application/vnd.oci.empty.v1+json"),
        (mt.DOCKER_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"),
        (mt.DOCKER_MANIFEST_LIST, "application/vnd.docker.distribution.manifest.list.v2+json"),
        (mt.DOCKER_CONFIG, "application/vnd.docker.container.image.v1+json"),
        (mt.DOCKER_LAYER, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        (mt.DOCKER_FOREIGN_LAYER, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
    ],
)
def test_constants_match_the_specs(constant: str, value: str) -> None:
    assert constant == value


def test_empty_descriptor_constants() -> None:
    assert str(Digest.of(b"{}")) == mt.OCI_EMPTY_DIGEST
    assert len(b"{}") == mt.OCI_EMPTY_SIZE


@pytest.mark.parametrize(
    ("header", "base"),
    [
        (None, ""),
        ("", ""),
        ("application/json", "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("  Application/VND.OCI.Image.Manifest.v1+JSON ;q=1", mt.OCI_MANIFEST),
        (";", ""),
    ],
)
def test_base_media_type(header: str | None, base: str) -> None:
    assert mt.base_media_type(header) == base

"""Checks of the OCI layout builder with skopeo reading the layouts it writes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.e2e import oci_layout
from tests.e2e.clients import inspect, inspect_raw

pytestmark = pytest.mark.e2e


def test_image_is_readable_by_skopeo(tmp_path: Path) -> None:
    """skopeo sees the manifest digest, the architecture and the one layer we wrote."""
    digest = oci_layout.build_image(tmp_path / "oci", "v1")
    info = inspect(f"oci:{tmp_path / 'oci'}:v1")
    manifest = json.loads(inspect_raw(f"oci:{tmp_path / 'oci'}:v1"))
    assert info["Digest"] == digest
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")
    assert info["Layers"] == [manifest["layers"][0]["digest"]]
    assert manifest["mediaType"] == oci_layout.OCI_MANIFEST


def test_builds_are_reproducible(tmp_path: Path) -> None:
    """Two layouts built from the same files have the same digests; labels change the manifest."""
    first = oci_layout.build_image(tmp_path / "a", "v1")
    assert oci_layout.build_image(tmp_path / "b", "v1") == first
    assert oci_layout.build_index(tmp_path / "a", "m") == oci_layout.build_index(tmp_path / "b", "m")
    assert oci_layout.build_image(tmp_path / "a", "v2", labels={"n": "2"}) != first


def test_config_has_diff_ids_of_uncompressed_layer(tmp_path: Path) -> None:
    """rootfs.diff_ids holds the sha256 of the uncompressed tar (OCI image spec, Layer DiffID)."""
    layout = tmp_path / "oci"
    oci_layout.build_image(layout, "v1", [oci_layout.LICENSES], arch="arm64")
    manifest = json.loads(oci_layout.read_blob(layout, oci_layout.resolve_tag(layout, "v1")["digest"]))
    config = json.loads(oci_layout.read_blob(layout, manifest["config"]["digest"]))
    layer = oci_layout.read_blob(layout, manifest["layers"][0]["digest"])
    assert config["rootfs"]["diff_ids"] == [oci_layout.sha256_digest(gzip.decompress(layer))]
    assert config["architecture"] == "arm64"
    assert config["config"]["Entrypoint"] == ["/bin/busybox"]


def test_index_has_two_platforms(tmp_path: Path) -> None:
    """skopeo reads the index and each child; the children name their platform."""
    layout = tmp_path / "oci"
    digest = oci_layout.build_index(layout, "multi")
    raw = inspect_raw(f"oci:{layout}:multi")
    assert oci_layout.sha256_digest(raw) == digest
    index = json.loads(raw)
    assert index["mediaType"] == oci_layout.OCI_INDEX
    platforms = [(m["platform"]["architecture"], m["platform"]["os"]) for m in index["manifests"]]
    assert platforms == [("amd64", "linux"), ("arm64", "linux")]

"""Unit tests for berth_common.oci.manifest: valid manifests of every supported type."""

from __future__ import annotations

import json
from typing import Any

import pytest

from berth_common.errors import ManifestInvalid
from berth_common.oci import mediatypes as mt
from berth_common.oci.digest import Digest
from berth_common.oci.manifest import Descriptor, ParsedManifest, parse_manifest

from .factories import D1, D2, D3, D4, desc, image, index


def parse(doc: Any, content_type: str | None = None) -> ParsedManifest:
    return parse_manifest(json.dumps(doc).encode(), content_type)


def test_oci_image_manifest() -> None:
    parsed = parse(
        image(annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}), mt.OCI_MANIFEST
    )
    assert parsed.media_type == mt.OCI_MANIFEST
    assert not parsed.is_index
    assert parsed.config == Descriptor(mt.OCI_CONFIG, D1, 10)
    assert [d.digest for d in parsed.layers] == [D2, D3]
    assert parsed.manifests == [] and parsed.manifest_references == []
    assert parsed.blob_references == [D1, D2, D3]
    assert parsed.subject is None
    assert parsed.artifact_type == mt.OCI_CONFIG  # falls back to config.mediaType
    assert parsed.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}


def test_oci_index() -> None:
    parsed = parse(index(), mt.OCI_INDEX)
    assert parsed.media_type == mt.OCI_INDEX
    assert parsed.is_index
    assert parsed.config is None and parsed.layers == [] and parsed.blob_references == []
    assert parsed.manifest_references == [D1, D2]
    assert parsed.manifests[1].platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert parsed.artifact_type is None  # an index without artifactType has none


def test_docker_schema2_manifest_and_list() -> None:
    doc = image(mt.DOCKER_MANIFEST)
    doc["config"]["mediaType"] = mt.DOCKER_CONFIG
    manifest = parse(doc, mt.DOCKER_MANIFEST)
    assert manifest.media_type == mt.DOCKER_MANIFEST and manifest.blob_references == [D1, D2, D3]
    listing = parse(index(mt.DOCKER_MANIFEST_LIST), mt.DOCKER_MANIFEST_LIST)
    assert listing.is_index and listing.manifest_references == [D1, D2]


def test_artifact_with_empty_config_subject_and_artifact_type() -> None:
    empty = Digest.parse(mt.OCI_EMPTY_DIGEST)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": desc(mt.OCI_EMPTY, empty, 2),
        "layers": [desc("application/spdx+json", D2, 1234)],
        "subject": desc(mt.OCI_MANIFEST, D4, 7682),
        "annotations": {"org.example.sbom.format": "json"},
    }
    parsed = parse(doc, mt.OCI_MANIFEST)
    assert parsed.artifact_type == "application/vnd.example.sbom.v1"
    assert parsed.subject == Descriptor(mt.OCI_MANIFEST, D4, 7682)
    assert parsed.blob_references == [empty, D2]
    assert D4 not in parsed.blob_references and D4 not in parsed.manifest_references


def test_artifact_with_no_layers() -> None:
    parsed = parse(image(layers=[], artifactType="application/x.thing"), mt.OCI_MANIFEST)
    assert parsed.layers == [] and parsed.blob_references == [D1]


def test_index_artifact_type_and_subject() -> None:
    parsed = parse(index(artifactType="application/x.bundle", subject=desc(mt.OCI_INDEX, D4)))
    assert parsed.artifact_type == "application/x.bundle"
    assert parsed.subject is not None and parsed.subject.digest == D4


def test_empty_artifact_type_falls_back_to_config_media_type() -> None:
    assert parse(image(artifactType="")).artifact_type == mt.OCI_CONFIG
    assert parse(index(artifactType="")).artifact_type is None


def test_foreign_layers_are_not_blob_references() -> None:
    doc = image(mt.DOCKER_MANIFEST)
    doc["layers"].append(desc(mt.DOCKER_FOREIGN_LAYER, D4, urls=["https://mcr.microsoft.com/l/1"]))
    parsed = parse(doc, mt.DOCKER_MANIFEST)
    assert parsed.layers[-1].urls == ["https://mcr.microsoft.com/l/1"] and parsed.layers[-1].is_foreign
    assert parsed.blob_references == [D1, D2, D3]


def test_duplicate_references_are_listed_once() -> None:
    doc = image(
        layers=[desc(mt.OCI_LAYER_GZIP, D1), desc(mt.OCI_LAYER_GZIP, D2), desc(mt.OCI_LAYER_GZIP, D2)]
    )
    assert parse(doc).blob_references == [D1, D2]
    dup = index(manifests=[desc(mt.OCI_MANIFEST, D3), desc(mt.OCI_MANIFEST, D3)])
    assert parse(dup).manifest_references == [D3]


def test_empty_index_is_valid() -> None:
    parsed = parse(index(manifests=[]))
    assert parsed.is_index and parsed.manifests == []


@pytest.mark.parametrize(
    ("doc", "content_type", "expected"),
    [
        # body mediaType wins when the header is absent or generic
        (image(), None, mt.OCI_MANIFEST),
        (image(), "application/json", mt.OCI_MANIFEST),
        (image(), "application/octet-stream", mt.OCI_MANIFEST),
        (image(), f"{mt.OCI_MANIFEST}; charset=utf-8", mt.OCI_MANIFEST),
        (image(), mt.OCI_MANIFEST.upper(), mt.OCI_MANIFEST),
        # no mediaType in the body (umoci): the Content-Type decides
        (image(None), mt.OCI_MANIFEST, mt.OCI_MANIFEST),
        (image(None), mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
        (index(None), mt.OCI_INDEX, mt.OCI_INDEX),
        (index(None), mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
        (index(None), f" {mt.DOCKER_MANIFEST_LIST} ;charset=utf-8", mt.DOCKER_MANIFEST_LIST),
        # neither: inferred from the shape
        (image(None), None, mt.OCI_MANIFEST),
        (image(None), "application/json; charset=utf-8", mt.OCI_MANIFEST),
        (index(None), None, mt.OCI_INDEX),
        (index(None), "", mt.OCI_INDEX),
        # empty or null mediaType counts as absent
        (image(None, mediaType=""), mt.OCI_MANIFEST, mt.OCI_MANIFEST),
        (image(None, mediaType=None), None, mt.OCI_MANIFEST),
    ],
)
def test_media_type_resolution(doc: dict[str, Any], content_type: str | None, expected: str) -> None:
    assert parse(doc, content_type).media_type == expected


def test_body_bytes_are_not_reinterpreted() -> None:
    body = b'\n  {"schemaVersion":2,"mediaType":"' + mt.OCI_INDEX.encode() + b'","manifests":[]}  \n'
    assert parse_manifest(body, None).media_type == mt.OCI_INDEX
    unicode_body = json.dumps(index(annotations={"note": "äöü ☃ 🚢 日本"}), ensure_ascii=False).encode()
    assert parse_manifest(unicode_body, None).annotations == {"note": "äöü ☃ 🚢 日本"}


def test_unknown_fields_and_descriptor_extras_are_tolerated() -> None:
    doc = image(futureField={"x": [1, 2]})
    doc["layers"][0]["data"] = "e30="
    doc["layers"][0]["annotations"] = {"org.opencontainers.image.title": "layer.tar.gz"}
    doc["layers"][0]["platform"] = None
    parsed = parse(doc)
    assert parsed.layers[0].annotations == {"org.opencontainers.image.title": "layer.tar.gz"}
    assert parsed.layers[0].platform is None


def test_descriptor_round_trips_to_json() -> None:
    raw = desc(
        mt.OCI_MANIFEST,
        D1,
        7,
        artifactType="application/x.y",
        annotations={"a": "b"},
        platform={"architecture": "amd64", "os": "linux"},
        urls=["https://x/1"],
    )
    descriptor = Descriptor.from_json(raw)
    assert descriptor.to_json() == raw
    assert Descriptor(mt.OCI_CONFIG, D1, 0).to_json() == desc(mt.OCI_CONFIG, D1, 0)


def test_size_limits() -> None:
    big = image(layers=[desc(mt.OCI_LAYER, D2, 2**63 - 1), desc(mt.OCI_LAYER, D3, 0)])
    assert [d.size for d in parse(big).layers] == [2**63 - 1, 0]


def test_errors_name_the_offending_field() -> None:
    doc = image()
    doc["layers"][1]["size"] = -1
    with pytest.raises(ManifestInvalid) as info:
        parse(doc)
    assert info.value.detail == {"field": "layers[1].size"}
    assert "layers[1].size" in info.value.message


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_index_with_null_manifests_is_empty(media_type: str) -> None:
    """Go writes a nil slice as null (``crane index filter``): an index of no manifests."""
    parsed = parse({"schemaVersion": 2, "mediaType": media_type, "manifests": None})
    assert parsed.is_index and parsed.manifests == [] and parsed.manifest_references == []


def test_image_with_null_layers_has_none() -> None:
    parsed = parse(image(layers=None))
    assert parsed.layers == [] and parsed.blob_references == [D1]


def test_platform_with_null_optional_strings() -> None:
    platform = {"architecture": "amd64", "os": "linux", "variant": None, "os.version": None, "features": None}
    parsed = parse(index(manifests=[desc(mt.OCI_MANIFEST, D4, platform=platform)]))
    assert parsed.manifests[0].platform == platform

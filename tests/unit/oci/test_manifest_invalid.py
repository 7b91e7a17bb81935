"""Unit tests for berth_common.oci.manifest: everything parse_manifest must refuse."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from berth_common.errors import ManifestInvalid, UnsupportedMediaType
from berth_common.oci import mediatypes as mt
from berth_common.oci.manifest import parse_manifest

from .factories import D1, D2, desc, image, index

Mutation = Callable[[dict[str, Any]], object]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting ``doc[a][b]...`` (path ``"a.b"``, list indexes as digits)."""

    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return apply


def _del(path: str) -> Mutation:
    """A mutation deleting ``doc[a][b]...``."""

    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        del target[last]

    return apply


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"   \n\t ", "empty"),
        (b"null", "JSON object, got null"),
        (b"[]", "JSON object, got array"),
        (b'[{"schemaVersion": 2}]', "JSON object, got array"),
        (b'"manifest"', "JSON object, got string"),
        (b"2", "JSON object, got number"),
        (b"true", "JSON object, got boolean"),
        (b"{", "not valid JSON"),
        (b"{'schemaVersion': 2}", "not valid JSON"),
        (b'{"schemaVersion": 2,}', "not valid JSON"),
        (b'{"schemaVersion": NaN}', "not valid JSON"),
        (b'{"schemaVersion": Infinity}', "not valid JSON"),
        (b'{"schemaVersion": 2} trailing', "not valid JSON"),
        (b"\xff\xfe{\x00}\x00", "not valid UTF-8"),
        (b'{"a": "\xc3\x28"}', "not valid UTF-8"),
        ("{}".encode("utf-16"), "not valid UTF-8"),
        (b"\x00\x00\x00", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"schemaVersion": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nested too deeply"),
        (b'{"schemaVersion": 2, "manifests": [], "x": "a\\u0000b"}', "NUL"),
        (b'{"schemaVersion": 2, "manifests": [], "x": "\\ud800"}', "surrogate"),
        (b'{"schemaVersion": 2, "manifests": [], "\\u0000": 1}', "NUL"),
    ],
)
def test_not_a_json_object(body: bytes, message: str) -> None:
    with pytest.raises(ManifestInvalid, match=message):
        parse_manifest(body, mt.OCI_MANIFEST)


def test_huge_body_of_garbage() -> None:
    with pytest.raises(ManifestInvalid):
        parse_manifest(b"\x89PNG" + bytes(range(256)) * 4096, None)


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        (_del("schemaVersion"), "schemaVersion"),
        (_set("schemaVersion", 1), "schemaVersion"),
        (_set("schemaVersion", 3), "schemaVersion"),
        (_set("schemaVersion", "2"), "schemaVersion"),
        (_set("schemaVersion", 2.0), "schemaVersion"),
        (_set("schemaVersion", True), "schemaVersion"),
        (_set("schemaVersion", None), "schemaVersion"),
        (_set("schemaVersion", 2**200), "schemaVersion"),
        (_set("mediaType", 7), "mediaType"),
        (_set("mediaType", ["x"]), "mediaType"),
        (_del("config"), "config"),
        (_set("config", None), "config"),
        (_set("config", "sha256:abc"), "config"),
        (_set("config", []), "config"),
        (_del("layers"), "layers"),
        (_set("layers", {}), "layers"),
        (_set("layers", "x"), "layers"),
        (_set("layers", [None]), "layers[0]"),
        (_set("layers", [[]]), "layers[0]"),
        (_set("layers", [desc(mt.OCI_LAYER, D1), 5]), "layers[1]"),
        (_set("manifests", []), "manifests"),  # an image manifest with an index's field
        (_set("subject", "sha256:x"), "subject"),
        (_set("subject", {}), "subject.mediaType"),
        (_set("annotations", []), "annotations"),
        (_set("annotations", {"a": 1}), "annotations"),
        (_set("annotations", {"a": None}), "annotations"),
        (_set("annotations", {"a": {"nested": "garbage"}}), "annotations"),
        (_set("artifactType", 5), "artifactType"),
        (_set("artifactType", "not a media type"), "artifactType"),
        # descriptor fields
        (_del("config.mediaType"), "config.mediaType"),
        (_set("config.mediaType", ""), "config.mediaType"),
        (_set("config.mediaType", None), "config.mediaType"),
        (_set("config.mediaType", "json"), "config.mediaType"),
        (_set("config.mediaType", "a/b/c"), "config.mediaType"),
        (_set("config.mediaType", "ä/ö"), "config.mediaType"),
        (_set("config.mediaType", "a/" + "b" * 200), "config.mediaType"),
        (_del("config.digest"), "config.digest"),
        (_set("config.digest", None), "config.digest"),
        (_set("config.digest", 12), "config.digest"),
        (_set("config.digest", ""), "config.digest"),
        (_set("config.digest", "sha256:" + "A" * 64), "config.digest"),
        (_set("config.digest", "md5:" + "a" * 32), "config.digest"),
        (_set("config.digest", "sha256:" + "a" * 63), "config.digest"),
        (_set("layers.1.digest", "sha256:" + "a" * 64 + "\n"), "layers[1].digest"),
        (_del("config.size"), "config.size"),
        (_set("config.size", None), "config.size"),
        (_set("config.size", -1), "config.size"),
        (_set("config.size", -(2**70)), "config.size"),
        (_set("config.size", 2**63), "config.size"),
        (_set("config.size", 10**400), "config.size"),
        (_set("config.size", 1.5), "config.size"),
        (_set("config.size", 10.0), "config.size"),
        (_set("config.size", "10"), "config.size"),
        (_set("config.size", True), "config.size"),
        (_set("layers.0.urls", "https://x"), "layers[0].urls"),
        (_set("layers.0.urls", [1]), "layers[0].urls"),
        (_set("layers.0.urls", [""]), "layers[0].urls"),
        (_set("layers.0.annotations", {"k": 1}), "layers[0].annotations"),
        (_set("layers.0.artifactType", {}), "layers[0].artifactType"),
        (_set("layers.0.platform", "linux/amd64"), "layers[0].platform"),
    ],
)
def test_invalid_image_manifest(mutation: Mutation, field: str) -> None:
    doc = copy.deepcopy(image())
    mutation(doc)
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(json.dumps(doc).encode(), mt.OCI_MANIFEST)
    assert info.value.message.startswith(f"{field}:"), info.value.message


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        (_del("manifests"), "manifests"),
        (_set("manifests", {"0": {}}), "manifests"),
        (_set("manifests", [None]), "manifests[0]"),
        (_set("manifests.1.size", -5), "manifests[1].size"),
        (_set("manifests.1.digest", "sha256:zz"), "manifests[1].digest"),
        (_set("manifests.0.platform", []), "manifests[0].platform"),
        (
            _set("manifests.0.platform", {"architecture": 64, "os": "linux"}),
            "manifests[0].platform.architecture",
        ),
        (_set("manifests.0.platform", {"architecture": "amd64", "os": None}), "manifests[0].platform.os"),
        (_set("config", desc(mt.OCI_CONFIG, D1)), "config"),  # an index with a manifest's field
        (_set("layers", []), "layers"),
        (_set("subject", {"mediaType": mt.OCI_MANIFEST, "digest": "x", "size": 1}), "subject.digest"),
    ],
)
def test_invalid_index(mutation: Mutation, field: str) -> None:
    doc = copy.deepcopy(index())
    mutation(doc)
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(json.dumps(doc).encode(), mt.OCI_INDEX)
    assert info.value.message.startswith(f"{field}:"), info.value.message


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (image(), mt.OCI_INDEX),
        (image(), mt.DOCKER_MANIFEST),
        (image(mt.DOCKER_MANIFEST), mt.OCI_MANIFEST),
        (index(), mt.DOCKER_MANIFEST_LIST),
        (index(), mt.OCI_MANIFEST),
        (image(), "text/plain"),
        (image(), mt.DOCKER_MANIFEST_V1_SIGNED),
    ],
)
def test_media_type_and_content_type_must_agree(doc: dict[str, Any], content_type: str) -> None:
    with pytest.raises(ManifestInvalid, match="does not match Content-Type"):
        parse_manifest(json.dumps(doc).encode(), content_type)


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (image(None), mt.OCI_INDEX),  # labelled an index, shaped like a manifest
        (index(None), mt.OCI_MANIFEST),  # labelled a manifest, shaped like an index
        (index(None), mt.DOCKER_MANIFEST),
    ],
)
def test_shape_must_fit_the_declared_type(doc: dict[str, Any], content_type: str) -> None:
    with pytest.raises(ManifestInvalid, match="not allowed"):
        parse_manifest(json.dumps(doc).encode(), content_type)


@pytest.mark.parametrize(
    "doc",
    [
        {"schemaVersion": 2},
        {"schemaVersion": 2, "config": desc(mt.OCI_CONFIG, D1)},  # no layers: ambiguous
        {"schemaVersion": 2, "layers": []},
        {},
    ],
)
def test_unlabelled_and_unrecognisable(doc: dict[str, Any]) -> None:
    with pytest.raises(ManifestInvalid, match="cannot determine"):
        parse_manifest(json.dumps(doc).encode(), None)


SCHEMA1 = {
    "schemaVersion": 1,
    "name": "feed/image",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": str(D2)}],
    "history": [{"v1Compatibility": "{}"}],
    "signatures": [],
}


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (SCHEMA1, mt.DOCKER_MANIFEST_V1_SIGNED),
        (SCHEMA1, mt.DOCKER_MANIFEST_V1),
        (SCHEMA1, None),
        (SCHEMA1, "application/json"),
        ({**SCHEMA1, "mediaType": mt.DOCKER_MANIFEST_V1}, None),
    ],
)
def test_docker_schema1_is_unsupported(doc: dict[str, Any], content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="schema 1"):
        parse_manifest(json.dumps(doc).encode(), content_type)


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (image(None), "text/plain"),
        (image(None), "application/vnd.oci.artifact.manifest.v1+json"),
        (image("application/vnd.oci.artifact.manifest.v1+json"), None),
        (image("application/vnd.oci.image.config.v1+json"), None),
        (image(mt.OCI_MANIFEST.upper()), None),  # body mediaType is compared exactly
        (image("☃/☃"), None),
        (image("x" * 10_000), None),
    ],
)
def test_non_manifest_media_types_are_unsupported(doc: dict[str, Any], content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        parse_manifest(json.dumps(doc).encode(), content_type)
    assert info.value.status == 415
    assert len(info.value.message) < 600


def test_unsupported_type_beats_schema_version() -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_manifest(json.dumps({**image("text/plain"), "schemaVersion": 9}).encode(), None)


def test_second_index_child_error_reports_its_position() -> None:
    doc = index(manifests=[desc(mt.OCI_MANIFEST, D1), desc(mt.OCI_MANIFEST, D2, size=-3)])
    with pytest.raises(ManifestInvalid, match=r"manifests\[1\]\.size"):
        parse_manifest(json.dumps(doc).encode(), None)


@pytest.mark.parametrize("size", [b"1e999", b"-0.0", b"1E2", b"-1", b"9" * 30])
def test_size_written_as_odd_json_numbers(size: bytes) -> None:
    body = json.dumps(image()).encode().replace(b'"size": 10', b'"size": ' + size, 1)
    with pytest.raises(ManifestInvalid, match=r"^config\.size: "):
        parse_manifest(body, None)

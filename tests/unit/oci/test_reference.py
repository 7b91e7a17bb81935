"""Unit tests for berth_common.oci.reference (OCI distribution spec v1.1, names and tags)."""

from __future__ import annotations

import pytest

from berth_common.errors import DigestInvalid, ManifestInvalid, NameInvalid
from berth_common.oci.digest import Digest
from berth_common.oci.reference import (
    MAX_NAME_LENGTH,
    RepositoryName,
    is_valid_tag,
    parse_reference,
    split_v2_path,
)

DIGEST = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("name", "feed", "image"),
    [
        ("feed/image", "feed", "image"),
        ("dmc/ubuntu", "dmc", "ubuntu"),
        ("dmc/tools/ubuntu", "dmc", "tools/ubuntu"),
        ("a/b/c/d/e", "a", "b/c/d/e"),
        ("f0/x", "f0", "x"),
        ("my-feed/my.image", "my-feed", "my.image"),
        ("my--feed/my___x".replace("___", "__"), "my--feed", "my__x"),
        ("a_b/c.d-e", "a_b", "c.d-e"),
        ("feed/a---b", "feed", "a---b"),
        ("feed/blobs", "feed", "blobs"),
        ("feed/manifests/tags/list", "feed", "manifests/tags/list"),
        ("0/1", "0", "1"),
    ],
)
def test_repository_name_valid(name: str, feed: str, image: str) -> None:
    parsed = RepositoryName.parse(name)
    assert (parsed.feed, parsed.image) == (feed, image)
    assert str(parsed) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "feed//image",
        "feed/image/",
        "/feed/image",
        "feed/../image",
        "feed/./image",
        "../feed",
        "feed/..",
        "Feed/image",
        "feed/Image",
        "feed/im age",
        "feed/image:tag",
        "feed/image@sha256:" + "a" * 64,
        "feed/-image",
        "feed/image-",
        "feed/.image",
        "feed/image.",
        "feed/a..b",
        "feed/a___b",
        "feed/a._b",
        "feed/_image",
        "feed/ímage",
        "feed/imagé",
        "feed/image\n",
        "feed\\image",
        "feed/image\x00",
        "feed/\u212a",  # Kelvin sign: lowercases to ASCII 'k' in some regex engines
        "\uff46eed/image",  # fullwidth f
    ],
)
def test_repository_name_invalid(name: str) -> None:
    with pytest.raises(NameInvalid):
        RepositoryName.parse(name)


@pytest.mark.parametrize("name", ["feed", "ubuntu", "a", "my-feed"])
def test_single_component_says_feed_image(name: str) -> None:
    with pytest.raises(NameInvalid, match="FEED/IMAGE"):
        RepositoryName.parse(name)


def test_name_length_limit() -> None:
    longest = "f/" + "a" * (MAX_NAME_LENGTH - 2)
    assert len(longest) == 255
    assert str(RepositoryName.parse(longest)) == longest
    with pytest.raises(NameInvalid, match="256 characters"):
        RepositoryName.parse(longest + "a")
    with pytest.raises(NameInvalid):
        RepositoryName.parse("f/" + "a" * 1_000_000)


@pytest.mark.parametrize("value", [None, 5, b"feed/image", ["feed", "image"]])
def test_name_rejects_non_strings(value: object) -> None:
    with pytest.raises(NameInvalid):
        RepositoryName.parse(value)  # type: ignore[arg-type]


def test_repository_name_is_a_value() -> None:
    a, b = RepositoryName.parse("f/i"), RepositoryName.parse("f/i")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.feed = "g"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("v1.2.3", True),
        ("1.0", True),
        ("_private", True),
        ("a", True),
        ("A-Z_0.9", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        (".hidden", False),
        ("-dash", False),
        ("has space", False),
        ("colon:tag", False),
        ("slash/tag", False),
        ("at@tag", False),
        ("tag\n", False),
        ("ünïcode", False),
        ("١٢٣", False),  # Arabic-Indic digits
        ("tag\x00", False),
        ("sha256-" + "a" * 64, True),  # the referrers tag schema
    ],
)
def test_is_valid_tag(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid


@pytest.mark.parametrize("value", [None, 1, b"latest"])
def test_is_valid_tag_non_strings(value: object) -> None:
    assert is_valid_tag(value) is False  # type: ignore[arg-type]


def test_parse_reference_tag_and_digest() -> None:
    assert parse_reference("latest") == "latest"
    assert parse_reference(DIGEST) == Digest.parse(DIGEST)
    assert isinstance(parse_reference(DIGEST), Digest)


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("", ManifestInvalid),
        ("x" * 129, ManifestInvalid),
        ("-bad", ManifestInvalid),
        ("bad tag", ManifestInvalid),
        ("sha256:short", DigestInvalid),
        ("sha256:" + "B" * 64, DigestInvalid),
        ("md5:" + "a" * 32, DigestInvalid),
        ("latest:", DigestInvalid),
        (":", DigestInvalid),
    ],
)
def test_parse_reference_invalid(ref: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_reference(ref)


def test_parse_reference_non_string() -> None:
    with pytest.raises(ManifestInvalid):
        parse_reference(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("feed/a/b/manifests/latest", ("feed/a/b", "manifests", "latest")),
        ("feed/x/manifests/" + DIGEST, ("feed/x", "manifests", DIGEST)),
        ("feed/x/blobs/" + DIGEST, ("feed/x", "blobs", DIGEST)),
        ("feed/x/blobs/uploads/", ("feed/x", "uploads", "")),
        ("feed/x/blobs/uploads", ("feed/x", "uploads", "")),
        ("feed/x/blobs/uploads/0b7e-uuid", ("feed/x", "uploads", "0b7e-uuid")),
        ("feed/x/tags/list", ("feed/x", "tags", "")),
        ("feed/x/referrers/" + DIGEST, ("feed/x", "referrers", DIGEST)),
        # names containing endpoint words: the LAST occurrence decides
        ("feed/blobs/manifests/latest", ("feed/blobs", "manifests", "latest")),
        ("feed/blobs/blobs/" + DIGEST, ("feed/blobs", "blobs", DIGEST)),
        ("feed/manifests/manifests/v1", ("feed/manifests", "manifests", "v1")),
        ("feed/blobs/uploads/blobs/uploads/", ("feed/blobs/uploads", "uploads", "")),
        ("feed/blobs/uploads/manifests/latest", ("feed/blobs/uploads", "manifests", "latest")),
        ("feed/tags/list/tags/list", ("feed/tags/list", "tags", "")),
        ("feed/referrers/referrers/" + DIGEST, ("feed/referrers", "referrers", DIGEST)),
        ("feed/uploads/blobs/" + DIGEST, ("feed/uploads", "blobs", DIGEST)),
        # the name part is not validated here
        ("single/manifests/latest", ("single", "manifests", "latest")),
        ("x/manifests/latest", ("x", "manifests", "latest")),
        ("Feed//x/manifests/latest", ("Feed//x", "manifests", "latest")),
        ("feed/x/manifests/", ("feed/x", "manifests", "")),
    ],
)
def test_split_v2_path(path: str, expected: tuple[str, str, str]) -> None:
    assert split_v2_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "feed",
        "feed/x",
        "manifests/latest",
        "/manifests/latest",
        "blobs/uploads/",
        "tags/list",
        "feed/x/tags",
        "feed/x/tags/list/",
        "feed/x/manifests",
        "feed/x/unknown/thing",
        "feed/x/blobs/uploads/a/b",
        "feed/x/manifests/a/b",
    ],
)
def test_split_v2_path_invalid(path: str) -> None:
    with pytest.raises(NameInvalid):
        split_v2_path(path)


def test_split_v2_path_non_string() -> None:
    with pytest.raises(NameInvalid):
        split_v2_path(None)  # type: ignore[arg-type]


def test_split_then_parse_single_component_gives_feed_image_message() -> None:
    name, _, _ = split_v2_path("ubuntu/manifests/latest")
    with pytest.raises(NameInvalid, match="FEED/IMAGE"):
        RepositoryName.parse(name)

"""Unit tests for berth_common.oci.digest (OCI image spec v1.1, Digests)."""

from __future__ import annotations

import hashlib

import pydantic
import pytest

from berth_common.errors import DigestInvalid
from berth_common.oci.digest import SUPPORTED_ALGORITHMS, Digest

HEX64 = "a" * 64
HEX128 = "0123456789abcdef" * 8
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("text", "algorithm", "hex_"),
    [
        (f"sha256:{HEX64}", "sha256", HEX64),
        (f"sha256:{EMPTY_SHA256}", "sha256", EMPTY_SHA256),
        (f"sha512:{HEX128}", "sha512", HEX128),
    ],
)
def test_parse_valid(text: str, algorithm: str, hex_: str) -> None:
    digest = Digest.parse(text)
    assert (digest.algorithm, digest.hex) == (algorithm, hex_)
    assert str(digest) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":",
        "sha256",
        "sha256:",
        f":{HEX64}",
        f"sha256:{HEX64[:-1]}",  # 63 characters
        f"sha256:{HEX64}a",  # 65 characters
        f"sha256:{HEX64.upper()}",  # uppercase hex is a second spelling of the same content
        f"SHA256:{HEX64}",
        f"sha256:{'g' * 64}",
        f"sha256:{HEX128}",  # sha512-length hex under sha256
        f"sha512:{HEX64}",
        f"md5:{'a' * 32}",
        f"sha1:{'a' * 40}",
        f"sha384:{'a' * 96}",
        f"multihash+base58:{HEX64}",
        f" sha256:{HEX64}",
        f"sha256:{HEX64} ",
        f"sha256:{HEX64}\n",  # '$' would have allowed this
        f"sha256 :{HEX64}",
        f"sha256:{HEX64[:32]}:{HEX64[:32]}",
        f"sha256:{'٣' * 64}",  # Arabic-Indic digits are not hex
        "sha256:" + "\uff41" * 64,  # fullwidth letters
        f"sha256:{HEX64[:63]}\x00",
        "sha256:" + "a" * 100_000,
        "☃:☃",
        "sha256+:" + HEX64,
        "+sha256:" + HEX64,
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(text)


@pytest.mark.parametrize("value", [None, 123, b"sha256:" + HEX64.encode(), ["sha256", HEX64]])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(DigestInvalid, match="must be a string"):
        Digest.parse(value)  # type: ignore[arg-type]


def test_unsupported_algorithm_message_names_supported_ones() -> None:
    with pytest.raises(DigestInvalid, match=r"unsupported digest algorithm 'md5'.*sha256, sha512"):
        Digest.parse(f"md5:{'a' * 32}")


def test_error_message_truncates_huge_input() -> None:
    with pytest.raises(DigestInvalid) as info:
        Digest.parse("x" * 1_000_000)
    assert len(info.value.message) < 300


def test_of_and_hasher_agree() -> None:
    data = b"hello, registry"
    digest = Digest.of(data)
    assert digest.algorithm == "sha256"
    assert digest.hex == hashlib.sha256(data).hexdigest()
    hasher = digest.new_hasher()
    hasher.update(data[:5])
    hasher.update(data[5:])
    assert Digest.from_hasher(hasher) == digest
    assert digest.matches(data)
    assert not digest.matches(data + b"!")


def test_of_empty_and_sha512() -> None:
    assert str(Digest.of(b"")) == f"sha256:{EMPTY_SHA256}"
    d512 = Digest.of(b"x", "sha512")
    assert d512 == Digest.parse(f"sha512:{hashlib.sha512(b'x').hexdigest()}")
    assert d512.new_hasher().name == "sha512"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", ""])
def test_of_rejects_unsupported_algorithm(algorithm: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.of(b"x", algorithm)


def test_from_hasher_rejects_unsupported_algorithm() -> None:
    with pytest.raises(DigestInvalid):
        Digest.from_hasher(hashlib.md5(b"x"))


def test_value_semantics() -> None:
    a = Digest.parse(f"sha256:{HEX64}")
    b = Digest.parse(f"sha256:{HEX64}")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.hex = "b" * 64  # type: ignore[misc]
    assert sorted([Digest.of(b"2"), Digest.of(b"1")]) == sorted([Digest.of(b"1"), Digest.of(b"2")])
    assert {"sha256", "sha512"} == SUPPORTED_ALGORITHMS


@pytest.mark.parametrize(
    ("digest", "tag"),
    [
        (f"sha256:{HEX64}", f"sha256-{HEX64}"),
        (f"sha512:{HEX128}", f"sha512-{HEX128[:64]}"),
    ],
)
def test_referrers_tag(digest: str, tag: str) -> None:
    assert Digest.parse(digest).referrers_tag() == tag


class _Model(pydantic.BaseModel):
    digest: Digest


def test_pydantic_field_round_trip() -> None:
    text = f"sha256:{HEX64}"
    model = _Model(digest=text)  # type: ignore[arg-type]
    assert model.digest == Digest.parse(text)
    assert model.model_dump(mode="json") == {"digest": text}
    assert _Model.model_validate_json(model.model_dump_json()) == model
    assert _Model(digest=Digest.parse(text)).digest == model.digest
    assert _Model.model_json_schema()["properties"]["digest"]["type"] == "string"


@pytest.mark.parametrize("bad", ["sha256:nope", 42, None])
def test_pydantic_field_rejects_bad_values(bad: object) -> None:
    with pytest.raises(pydantic.ValidationError):
        _Model(digest=bad)  # type: ignore[arg-type]

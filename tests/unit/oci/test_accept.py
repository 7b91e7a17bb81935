"""Unit tests for berth_common.oci.accept (RFC 9110 Accept; Distribution 2.8 policy)."""

from __future__ import annotations

import pytest

from berth_common.oci import mediatypes as mt
from berth_common.oci.accept import acceptable_for, accepts, parse_accept

# What real clients send (abridged but in their order).
DOCKER_ACCEPT = [mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX]
CONTAINERD_ACCEPT = [", ".join([*DOCKER_ACCEPT, "*/*"])]
OLD_DOCKER_ACCEPT = [mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_V1_SIGNED]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], []),
        ([""], []),
        (["application/json"], [("application/json", 1.0)]),
        (["a/b, c/d"], [("a/b", 1.0), ("c/d", 1.0)]),
        (["a/b", "c/d;q=0.5"], [("a/b", 1.0), ("c/d", 0.5)]),
        (["A/B;Q=0.25"], [("a/b", 0.25)]),
        (["a/b; charset=utf-8; q=0.3; ext=1"], [("a/b", 0.3)]),
        (['a/b;q="0.7"'], [("a/b", 0.7)]),
        (["*/*;q=0.1"], [("*/*", 0.1)]),
        (["*; q=.2"], [("*/*", 0.2)]),
        (["application/*"], [("application/*", 1.0)]),
        (["a/b;q=0"], [("a/b", 0.0)]),
        (["a/b;q=7"], [("a/b", 1.0)]),
        (["a/b;q=-1"], [("a/b", 0.0)]),
        (["a/b;q=nan", "c/d;q=inf", "e/f;q=x"], []),
        (["garbage, , a/, /b, */b, a/b/c, a/b"], [("a/b", 1.0)]),
        ([",,,"], []),
        (["ü/ß"], [("ü/ß", 1.0)]),
    ],
)
def test_parse_accept(headers: list[str], expected: list[tuple[str, float]]) -> None:
    assert parse_accept(headers) == expected


def test_parse_accept_bare_string_is_one_header() -> None:
    assert parse_accept("a/b, c/d") == [("a/b", 1.0), ("c/d", 1.0)]


def test_parse_accept_huge_header() -> None:
    header = ", ".join(f"x/y{i};q=0.5" for i in range(10_000))
    assert len(parse_accept([header])) == 10_000


@pytest.mark.parametrize(
    ("headers", "media_type", "expected"),
    [
        ([], mt.OCI_MANIFEST, True),
        ([""], mt.OCI_MANIFEST, True),
        (["nonsense"], mt.OCI_MANIFEST, True),  # nothing parseable says nothing
        ([mt.OCI_MANIFEST], mt.OCI_MANIFEST, True),
        ([mt.OCI_MANIFEST.upper()], mt.OCI_MANIFEST, True),
        ([mt.DOCKER_MANIFEST], mt.OCI_MANIFEST, False),
        (DOCKER_ACCEPT, mt.OCI_INDEX, True),
        (OLD_DOCKER_ACCEPT, mt.OCI_INDEX, False),
        (["*/*"], mt.OCI_MANIFEST, True),
        (["application/*"], mt.OCI_MANIFEST, True),
        (["text/*"], mt.OCI_MANIFEST, False),
        ([f"{mt.OCI_MANIFEST};q=0"], mt.OCI_MANIFEST, False),
        ([f"*/*, {mt.OCI_MANIFEST};q=0"], mt.OCI_MANIFEST, False),  # the specific range wins
        ([f"*/*;q=0, {mt.OCI_MANIFEST}"], mt.OCI_MANIFEST, True),
        (["application/*;q=0, */*"], mt.OCI_MANIFEST, False),
        ([f"{mt.OCI_MANIFEST};q=0", mt.OCI_MANIFEST], mt.OCI_MANIFEST, True),  # highest q of equals
        ([mt.OCI_MANIFEST], f"{mt.OCI_MANIFEST}; charset=utf-8", True),
    ],
)
def test_accepts(headers: list[str], media_type: str, expected: bool) -> None:
    assert accepts(headers, media_type) is expected


@pytest.mark.parametrize(
    ("headers", "media_type", "by_digest", "expected"),
    [
        # by digest: always served
        (OLD_DOCKER_ACCEPT, mt.OCI_MANIFEST, True, True),
        ([mt.DOCKER_MANIFEST], mt.OCI_INDEX, True, True),
        # by tag, OCI types must be accepted (Distribution 2.8: MANIFEST_UNKNOWN otherwise)
        (OLD_DOCKER_ACCEPT, mt.OCI_MANIFEST, False, False),
        (OLD_DOCKER_ACCEPT, mt.OCI_INDEX, False, False),
        ([mt.OCI_MANIFEST], mt.OCI_INDEX, False, False),
        (DOCKER_ACCEPT, mt.OCI_MANIFEST, False, True),
        (CONTAINERD_ACCEPT, mt.OCI_INDEX, False, True),
        (["*/*"], mt.OCI_INDEX, False, True),
        ([], mt.OCI_MANIFEST, False, True),  # curl without Accept
        # Docker types are served as stored (never rewritten to schema 1)
        ([mt.OCI_MANIFEST], mt.DOCKER_MANIFEST, False, True),
        ([mt.OCI_INDEX], mt.DOCKER_MANIFEST_LIST, False, True),
        (["text/html"], mt.DOCKER_MANIFEST, False, True),
    ],
)
def test_acceptable_for(headers: list[str], media_type: str, by_digest: bool, expected: bool) -> None:
    assert acceptable_for(headers, media_type, by_digest) is expected

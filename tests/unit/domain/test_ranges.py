"""Range arithmetic of blob GETs and chunk uploads (``berth_blob.routes.ranges``), no I/O.

RFC 9110 §14 (``Range``) and the OCI distribution spec v1.1.1, "Pushing a blob in chunks"
(``Content-Range`` is ``^[0-9]+-[0-9]+$``, inclusive) and "Error Codes".
"""

from __future__ import annotations

import pytest

from berth_blob.routes.ranges import parse_chunk, parse_content_range, parse_length, parse_range
from berth_common.errors import RangeInvalid, RangeNotSatisfiable, SizeInvalid


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("", 10, None),
        ("bytes=0-9", 10, (0, 10)),
        ("bytes=0-0", 10, (0, 1)),
        ("bytes=2-5", 10, (2, 4)),
        ("bytes=5-", 10, (5, 5)),
        ("bytes=5-100", 10, (5, 5)),  # the end is clamped to the last byte
        ("bytes=-3", 10, (7, 3)),  # the last three bytes
        ("bytes=-30", 10, (0, 10)),  # a suffix longer than the blob is the whole blob
        ("bytes=-", 10, None),
        ("bytes=0-1,4-5", 10, None),  # multi-range: ignored, the whole blob
        ("items=0-1", 10, None),  # another unit: ignored
        (" bytes=1-2 ", 10, (1, 2)),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=10-", 10),
        ("bytes=10-12", 10),
        ("bytes=5-4", 10),
        ("bytes=-0", 10),
        ("bytes=-1", 0),
        ("bytes=0-", 0),
    ],
)
def test_unsatisfiable_range_is_416_with_the_size(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as refused:
        parse_range(header, size)
    assert (refused.value.status, refused.value.code) == (416, "SIZE_INVALID")
    assert refused.value.headers == {"Content-Range": f"bytes */{size}"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("0-0", (0, 0)), ("0-1023", (0, 1023)), ("1024-2047", (1024, 2047))],
)
def test_parse_content_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize(
    "header", ["", "bytes 0-9/10", "bytes=0-9", "0-", "-9", "0-9/10", " 0-9", "a-b", "9-0", "1" * 20 + "-1"]
)
def test_malformed_or_reversed_content_range_is_416_blob_upload_invalid(header: str) -> None:
    with pytest.raises(RangeInvalid) as refused:
        parse_content_range(header)
    assert (refused.value.status, refused.value.code) == (416, "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize(("header", "expected"), [(None, None), ("0", 0), ("1024", 1024)])
def test_parse_length(header: str | None, expected: int | None) -> None:
    assert parse_length(header) == expected


@pytest.mark.parametrize("header", ["", "-1", "1.5", "ten", " 1", "1" * 20])
def test_junk_content_length_is_400_size_invalid(header: str) -> None:
    with pytest.raises(SizeInvalid) as refused:
        parse_length(header)
    assert (refused.value.status, refused.value.code) == (400, "SIZE_INVALID")


def test_chunk_range_and_length_must_agree() -> None:
    assert parse_chunk("0-9", "10") == ((0, 9), 10)
    assert parse_chunk(None, "10") == (None, 10)
    assert parse_chunk("0-9", None) == ((0, 9), None)
    with pytest.raises(SizeInvalid) as refused:
        parse_chunk("0-9", "11")
    assert (refused.value.status, refused.value.code) == (400, "SIZE_INVALID")
    assert refused.value.detail == {"range": "0-9", "length": 11}

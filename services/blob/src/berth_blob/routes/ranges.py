"""Parsing of ``Range`` (blob GET, RFC 9110 §14) and ``Content-Range`` (chunk uploads).

Upload headers are checked here, in the route layer, before the upload domain sees a byte: a
refused chunk leaves its session exactly as it was.
"""

from __future__ import annotations

import re

from berth_common.errors import RangeInvalid, RangeNotSatisfiable, SizeInvalid

_BYTES_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
_CONTENT_RANGE = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")  # the spec's ^[0-9]+-[0-9]+$, int64-sized


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(offset, count)`` for a single ``bytes=`` range, or None to send the whole blob.

    A multi-range or non-``bytes`` header is ignored (RFC 9110 allows it).
    Raises ``RangeNotSatisfiable`` (416 SIZE_INVALID, with ``Content-Range: bytes */size``)
    when unsatisfiable.
    """
    if not header:
        return None
    match = _BYTES_RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    unsatisfiable = RangeNotSatisfiable(
        f"range {header[:60]!r} not satisfiable for {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(size - suffix, 0), min(suffix, size)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise unsatisfiable
    end = min(end, size - 1)
    return start, end - start + 1


def parse_content_range(header: str | None) -> tuple[int, int] | None:
    """The inclusive ``(start, end)`` of a chunk's ``Content-Range``, or None if absent.

    OCI distribution spec v1.1.1, "Pushing a blob in chunks": the range "MUST match the
    following regular expression: ``^[0-9]+-[0-9]+$``" — no ``bytes`` unit, no ``/size``, no
    open end. Raises ``RangeInvalid`` (416 BLOB_UPLOAD_INVALID) for anything else, including a
    reversed range.
    """
    if header is None:
        return None
    match = _CONTENT_RANGE.fullmatch(header)
    if match is None:
        raise RangeInvalid(f"malformed Content-Range {header[:60]!r}; expected <start>-<end>, e.g. 0-1023")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeInvalid(f"Content-Range end {end} is before its start {start}")
    return start, end


def parse_length(header: str | None) -> int | None:
    """``Content-Length`` as an int, or None. Raises ``SizeInvalid`` (400) on junk."""
    if header is None:
        return None
    if not header.isdigit() or len(header) > 19:
        raise SizeInvalid(f"invalid Content-Length {header[:30]!r}")
    return int(header)


def parse_chunk(
    content_range: str | None, content_length: str | None
) -> tuple[tuple[int, int] | None, int | None]:
    """``(range, length)`` of a chunk (PATCH, or the closing PUT's final chunk), cross-checked.

    Raises:
        RangeInvalid: 416 BLOB_UPLOAD_INVALID, a malformed or reversed ``Content-Range``.
        SizeInvalid: 400, a junk ``Content-Length``, or a range whose length is not it (spec
            "Error Codes", code-10: "provided length did not match content length").
    """
    chunk = parse_content_range(content_range)
    length = parse_length(content_length)
    if chunk is not None and length is not None and chunk[1] - chunk[0] + 1 != length:
        raise SizeInvalid(
            f"Content-Range {chunk[0]}-{chunk[1]} holds {chunk[1] - chunk[0] + 1} bytes,"
            f" but Content-Length is {length}",
            detail={"range": f"{chunk[0]}-{chunk[1]}", "length": length},
        )
    return chunk, length

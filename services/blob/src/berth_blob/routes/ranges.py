"""Parsing of ``Range`` (blob GET, RFC 9110 §14) and ``Content-Range`` (chunked upload PATCH)."""

from __future__ import annotations

import re

from berth_common.errors import RangeInvalid, RangeNotSatisfiable

_BYTES_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?$")


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
    """The inclusive ``(start, end)`` of a PATCH ``Content-Range``, or None if absent.

    OCI distribution spec v1.1, "Pushing a blob in chunks": ``Content-Range: <start>-<end>``.
    Raises ``RangeInvalid`` (416) for a malformed or reversed range.
    """
    if header is None:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        raise RangeInvalid(f"malformed Content-Range {header[:60]!r}; expected <start>-<end>")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeInvalid(f"Content-Range end {end} is before its start {start}")
    return start, end


def parse_length(header: str | None) -> int | None:
    """``Content-Length`` as an int, or None. Raises ``RangeInvalid``-free ``SizeInvalid`` on junk."""
    from berth_common.errors import SizeInvalid

    if header is None:
        return None
    if not header.isdigit() or len(header) > 19:
        raise SizeInvalid(f"invalid Content-Length {header[:30]!r}")
    return int(header)

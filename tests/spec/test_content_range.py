"""``Content-Range`` of chunk uploads, parsed to the letter of the spec.

OCI distribution spec v1.1.1, "Pushing a blob in chunks": the ``<range>`` of a PATCH (and of
a final chunk sent with the closing PUT) is inclusive and "MUST match the following regular
expression: ``^[0-9]+-[0-9]+$``"; an out-of-order chunk MUST get ``416``; ``<length>`` is the
chunk's ``Content-Length``. Anything else is refused before a byte is stored: 416 for a range
that is malformed or out of order, 400 SIZE_INVALID for a range whose length is not the body's
("Error Codes", code-10: "provided length did not match content length"). Either way the
session is unchanged and the upload can go on. Distribution 2.8 ignores ``Content-Range``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import (
    assert_blob_content,
    assert_error,
    chunk_headers,
    digest_of,
    random_blob,
    start_upload,
    with_query,
)

pytestmark = pytest.mark.berth_only  # Distribution 2.8 ignores Content-Range (appends anyway)

MALFORMED = ["bytes 5-9/10", "bytes=5-9", "5-", "-9", "9-5", "abc", "5-9/10", " 5 - 9", "0x5-9", "+5-9"]


async def _session_with_five_bytes(client: httpx.AsyncClient, repo: str, data: bytes) -> str:
    """A session holding ``data[:5]``; returns its latest location."""
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.patch(location, content=data[:5], headers=chunk_headers(0, data[:5]))
    assert r.status_code == 202 and r.headers["range"] == "0-4"
    return str(r.headers["location"])


async def _assert_unchanged_then_finish(
    client: httpx.AsyncClient, repo: str, location: str, data: bytes
) -> None:
    """The session still holds five bytes; the rest completes it into the right blob."""
    status = await client.get(location)
    assert status.status_code == 204 and status.headers["range"] == "0-4"
    rest = data[5:]
    r = await client.put(
        with_query(location, digest=digest_of(data)), content=rest, headers=chunk_headers(5, rest)
    )
    assert r.status_code == 201, r.text
    await assert_blob_content(client, repo, digest_of(data), data)


@pytest.mark.parametrize("value", MALFORMED)
async def test_malformed_content_range_on_patch_is_416(
    client: httpx.AsyncClient, repo: str, value: str
) -> None:
    data = random_blob(10)
    location = await _session_with_five_bytes(client, repo, data)
    headers = {"Content-Type": "application/octet-stream", "Content-Range": value}
    r = await client.patch(location, content=data[5:], headers=headers)
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["range"] == "0-4"
    await _assert_unchanged_then_finish(client, repo, location, data)


@pytest.mark.parametrize("value", MALFORMED)
async def test_malformed_content_range_on_closing_put_is_416(
    client: httpx.AsyncClient, repo: str, value: str
) -> None:
    data = random_blob(10)
    location = await _session_with_five_bytes(client, repo, data)
    headers = {"Content-Type": "application/octet-stream", "Content-Range": value}
    r = await client.put(with_query(location, digest=digest_of(data)), content=data[5:], headers=headers)
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    await _assert_unchanged_then_finish(client, repo, location, data)


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize(("content_range", "size"), [("5-9", 3), ("5-9", 7), ("5-5", 2)])
async def test_range_length_differs_from_content_length_is_400(
    client: httpx.AsyncClient, repo: str, method: str, content_range: str, size: int
) -> None:
    data = random_blob(10)
    location = await _session_with_five_bytes(client, repo, data)
    url = location if method == "PATCH" else with_query(location, digest=digest_of(data))
    headers = {"Content-Type": "application/octet-stream", "Content-Range": content_range}
    r = await client.request(method, url, content=random_blob(size), headers=headers)
    assert_error(r, 400, "SIZE_INVALID")
    await _assert_unchanged_then_finish(client, repo, location, data)


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_out_of_order_range_is_416(client: httpx.AsyncClient, repo: str, method: str) -> None:
    data = random_blob(10)
    location = await _session_with_five_bytes(client, repo, data)
    url = location if method == "PATCH" else with_query(location, digest=digest_of(data))
    r = await client.request(method, url, content=data[4:], headers=chunk_headers(4, data[4:]))
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    await _assert_unchanged_then_finish(client, repo, location, data)

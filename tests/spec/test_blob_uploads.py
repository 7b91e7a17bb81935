"""Pushing blobs: upload sessions, monolithic and chunked, status, cancel, digest checks.

OCI distribution spec v1.1, "Pushing blobs", "Pushing a blob monolithically", "Pushing a blob
in chunks", "Cancel a blob upload" (end-4a, end-4b, end-5, end-6, end-13, end-14).
"""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import (
    UUID_RE,
    assert_blob_absent,
    assert_blob_content,
    assert_error,
    chunk_headers,
    digest_of,
    location_path,
    push_blob_chunked,
    random_blob,
    start_upload,
    with_query,
)


async def test_post_starts_upload_session(client: httpx.AsyncClient, repo: str) -> None:
    """202 + Location holding a UUID; Distribution also sends Docker-Upload-UUID and Range 0-0."""
    r = await start_upload(client, repo)
    location = r.headers["location"]
    assert location_path(location).startswith(f"/v2/{repo}/blobs/uploads/")
    assert UUID_RE.search(location)
    assert r.headers["docker-upload-uuid"] in location
    assert r.headers["range"] == "0-0"


async def test_post_then_put_monolithic(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(2048)
    digest = digest_of(data)
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.put(
        with_query(location, digest=digest),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201
    assert location_path(r.headers["location"]) == f"/v2/{repo}/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    await assert_blob_content(client, repo, digest, data)


async def test_single_post_monolithic_upload(client: httpx.AsyncClient, repo: str) -> None:
    """Single POST ``?digest=`` is a MAY: 201 with the blob, or 202 and a session to PUT to."""
    data = random_blob(512)
    digest = digest_of(data)
    r = await client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code in (201, 202)
    if r.status_code == 202:
        r = await client.put(with_query(r.headers["location"], digest=digest), content=data)
        assert r.status_code == 201
    await assert_blob_content(client, repo, digest, data)


@pytest.mark.berth_only  # Distribution 2.8 does not support single-POST uploads (answers 202)
async def test_single_post_monolithic_upload_is_201(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(512)
    digest = digest_of(data)
    r = await client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201
    assert location_path(r.headers["location"]) == f"/v2/{repo}/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    await assert_blob_content(client, repo, digest, data)


@pytest.mark.berth_only  # Distribution 2.8 ignores ?digest= on POST
async def test_single_post_with_wrong_digest_is_digest_invalid(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(512)
    claimed = digest_of(b"something else")
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data)
    assert_error(r, 400, "DIGEST_INVALID")
    await assert_blob_absent(client, repo, claimed, digest_of(data))


async def test_streamed_patch_reports_cumulative_range(client: httpx.AsyncClient, repo: str) -> None:
    """PATCH without Content-Range appends; Range is ``0-<last byte>`` of all data so far."""
    data = random_blob(30)
    location = (await start_upload(client, repo)).headers["location"]
    for start, end in ((0, 10), (10, 25), (25, 30)):
        r = await client.patch(
            location, content=data[start:end], headers={"Content-Type": "application/octet-stream"}
        )
        assert r.status_code == 202
        assert r.headers["range"] == f"0-{end - 1}"
        assert UUID_RE.search(r.headers["location"])
        location = r.headers["location"]
    r = await client.put(with_query(location, digest=digest_of(data)))
    assert r.status_code == 201
    await assert_blob_content(client, repo, digest_of(data), data)


async def test_chunked_upload_with_content_range(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(1000)
    digest = await push_blob_chunked(client, repo, data, chunk=300)
    await assert_blob_content(client, repo, digest, data)


async def test_final_chunk_in_closing_put(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(100)
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.patch(location, content=data[:60], headers=chunk_headers(0, data[:60]))
    assert r.status_code == 202
    r = await client.put(
        with_query(r.headers["location"], digest=digest_of(data)),
        content=data[60:],
        headers=chunk_headers(60, data[60:]),
    )
    assert r.status_code == 201
    assert r.headers["docker-content-digest"] == digest_of(data)
    await assert_blob_content(client, repo, digest_of(data), data)


@pytest.mark.berth_only  # Distribution 2.8 ignores Content-Range and appends out-of-order chunks
async def test_out_of_order_chunk_is_416_and_not_appended(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(20)
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.patch(location, content=data[:10], headers=chunk_headers(0, data[:10]))
    assert r.status_code == 202
    location = r.headers["location"]
    r = await client.patch(location, content=data[15:], headers=chunk_headers(15, data[15:]))
    assert r.status_code == 416
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-9"
    r = await client.patch(location, content=data[10:], headers=chunk_headers(10, data[10:]))
    assert r.status_code == 202
    assert r.headers["range"] == "0-19"
    r = await client.put(with_query(r.headers["location"], digest=digest_of(data)))
    assert r.status_code == 201
    await assert_blob_content(client, repo, digest_of(data), data)


async def test_upload_status_reports_range(client: httpx.AsyncClient, repo: str) -> None:
    """GET <location>: 204 No Content with Location and ``Range: 0-<end-of-range>``."""
    location = (await start_upload(client, repo)).headers["location"]
    part = random_blob(42)
    r = await client.patch(location, content=part, headers=chunk_headers(0, part))
    assert r.status_code == 202
    status = await client.get(r.headers["location"])
    assert status.status_code == 204
    assert status.content == b""
    assert status.headers["range"] == "0-41"
    assert UUID_RE.search(status.headers["location"])


async def test_upload_status_before_any_data(client: httpx.AsyncClient, repo: str) -> None:
    """The spec requires a Range header on every status; with nothing received yet the only
    value of the form ``0-<end>`` that clients (and Distribution) use is ``0-0``."""
    location = (await start_upload(client, repo)).headers["location"]
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-0"
    assert status.headers.get("location")


async def test_put_without_body_after_patches(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(64)
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.patch(location, content=data, headers=chunk_headers(0, data))
    r = await client.put(with_query(r.headers["location"], digest=digest_of(data)))
    assert r.status_code == 201
    assert location_path(r.headers["location"]) == f"/v2/{repo}/blobs/{digest_of(data)}"


async def test_put_with_wrong_digest_is_digest_invalid(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(64)
    claimed = digest_of(b"not this content")
    location = (await start_upload(client, repo)).headers["location"]
    assert_error(await client.put(with_query(location, digest=claimed), content=data), 400, "DIGEST_INVALID")
    await assert_blob_absent(client, repo, claimed, digest_of(data))


@pytest.mark.parametrize("bad", ["sha256:XYZ", "sha256:" + "0" * 10, "nodigest", "sha256:" + "G" * 64])
async def test_put_with_malformed_digest_is_digest_invalid(
    client: httpx.AsyncClient, repo: str, bad: str
) -> None:
    location = (await start_upload(client, repo)).headers["location"]
    assert_error(await client.put(with_query(location, digest=bad), content=b"abc"), 400, "DIGEST_INVALID")


async def test_put_without_digest_is_digest_invalid(client: httpx.AsyncClient, repo: str) -> None:
    location = (await start_upload(client, repo)).headers["location"]
    assert_error(await client.put(location, content=b"abc"), 400, "DIGEST_INVALID")


async def test_cancel_upload(client: httpx.AsyncClient, repo: str) -> None:
    """DELETE <location> → 204; afterwards the session is unknown (404 BLOB_UPLOAD_UNKNOWN)."""
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.delete(location)
    assert r.status_code == 204
    assert_error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(await client.patch(location, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")


async def test_session_is_finished_after_put(client: httpx.AsyncClient, repo: str) -> None:
    data = random_blob(16)
    location = (await start_upload(client, repo)).headers["location"]
    assert (await client.put(with_query(location, digest=digest_of(data)), content=data)).status_code == 201
    r = await client.get(location)
    assert r.status_code == 404


UNKNOWN_SESSION = "7d7a0a5e-0000-4000-8000-000000000000"


async def test_unknown_upload_session_is_404(client: httpx.AsyncClient, repo: str) -> None:
    await start_upload(client, repo)
    url = f"/v2/{repo}/blobs/uploads/{UNKNOWN_SESSION}"
    for r in (
        await client.patch(url, content=b"x"),
        await client.get(url),
        await client.put(url + "?digest=sha256:" + "0" * 64),
    ):
        assert r.status_code == 404


@pytest.mark.berth_only  # Distribution 2.8 answers BLOB_UPLOAD_INVALID for a session without _state
async def test_unknown_upload_session_is_blob_upload_unknown(client: httpx.AsyncClient, repo: str) -> None:
    await start_upload(client, repo)
    url = f"/v2/{repo}/blobs/uploads/{UNKNOWN_SESSION}"
    assert_error(await client.patch(url, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(await client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(await client.delete(url), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.berth_only  # Distribution 2.8 ignores Content-Range on PATCH
@pytest.mark.parametrize("content_range", ["garbage", "5-", "99999999999999999999999-1", "10-5", "0-99"])
async def test_invalid_content_range_is_rejected(
    client: httpx.AsyncClient, repo: str, content_range: str
) -> None:
    location = (await start_upload(client, repo)).headers["location"]
    r = await client.patch(location, content=b"0123456789", headers={"Content-Range": content_range})
    assert r.status_code in (400, 416)
    status = await client.get(location)
    assert status.headers["range"] == "0-0"

"""Every registry error carries one of the spec's fourteen codes, with the spec's status.

OCI distribution spec v1.1.1, "Error Codes": a JSON body of a 4XX answer is
``{"errors": [{"code", "message", "detail"}]}`` and "the code field MUST be one of" BLOB_UNKNOWN …
TOOMANYREQUESTS (:data:`SPEC_CODES`). "Pulling manifests": a manifest that is not found is
``404 Not Found``, and ``<reference>`` is either a digest or a tag, nothing else — so a reference
that is neither names no manifest (the v1.1.1 conformance suite GETs
``/manifests/.INVALID_MANIFEST_NAME`` and expects 404). Berth's choices for the statuses the
table does not name are in docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations

import httpx
import pytest

from tests.spec.helpers import (
    OCI_MANIFEST,
    assert_error,
    chunk_headers,
    error_codes,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    start_upload,
)

SPEC_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)
"""The fourteen codes of the spec's table (code-1 … code-14)."""

# Neither a tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}) nor a digest of a supported algorithm.
NOT_A_REFERENCE = [".INVALID_MANIFEST_NAME", "-bad", "a" * 129, "bad@tag"]
NOT_A_DIGEST = ["sha256:XYZ", "md5:" + "0" * 32]


def assert_spec_codes(response: httpx.Response) -> None:
    """A 4XX JSON body holds only codes of the spec's table."""
    codes = error_codes(response)
    assert codes, f"{response.status_code} {response.text[:200]}"
    assert set(codes) <= SPEC_CODES, codes


@pytest.mark.parametrize("reference", NOT_A_REFERENCE)
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
async def test_reference_neither_tag_nor_digest_is_404(
    client: httpx.AsyncClient, repo: str, method: str, reference: str
) -> None:
    """Spec "Pulling manifests": not found → 404 (conformance: ``.INVALID_MANIFEST_NAME``)."""
    await push_image(client, repo, "v1")
    r = await client.request(method, f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 404, r.text


@pytest.mark.berth_only  # Distribution 2.8: no route matches, a plain-text 404 without a code
@pytest.mark.parametrize("reference", NOT_A_REFERENCE + NOT_A_DIGEST)
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
async def test_reference_neither_tag_nor_digest_is_manifest_unknown(
    client: httpx.AsyncClient, repo: str, method: str, reference: str
) -> None:
    """The 404 says MANIFEST_UNKNOWN (TAG_INVALID is not among the spec's codes)."""
    await push_image(client, repo, "v1")
    r = await client.request(method, f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    assert_error(r, 404, "MANIFEST_UNKNOWN")


@pytest.mark.berth_only  # Distribution 2.8: no route matches, a plain-text 404
@pytest.mark.parametrize("reference", NOT_A_REFERENCE)
async def test_push_to_invalid_tag_is_manifest_invalid(
    client: httpx.AsyncClient, repo: str, reference: str
) -> None:
    """A push names a tag to create; one outside the tag grammar is a 400 MANIFEST_INVALID."""
    image = await push_image(client, repo)
    r = await push_manifest(client, repo, reference, image.body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_INVALID")


@pytest.mark.berth_only  # Distribution 2.8 ignores Content-Range (and answers RANGE_INVALID elsewhere)
async def test_out_of_order_chunk_is_416_blob_upload_invalid(client: httpx.AsyncClient, repo: str) -> None:
    """Spec "Pushing a blob in chunks": out of order → 416; the code is BLOB_UPLOAD_INVALID."""
    location = (await start_upload(client, repo)).headers["location"]
    part = random_blob(10)
    r = await client.patch(location, content=part, headers=chunk_headers(5, part))
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["range"] == "0-0"


@pytest.mark.berth_only  # Distribution 2.8 writes 200 headers then drops the connection
async def test_unsatisfiable_blob_range_is_416_size_invalid(client: httpx.AsyncClient, repo: str) -> None:
    """RFC 9110 §15.5.17 (416 with ``Content-Range: bytes */size``); the body's code is
    SIZE_INVALID: the requested positions do not fit the blob's length."""
    digest = await push_blob(client, repo, random_blob(100))
    r = await client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=100-"})
    assert_error(r, 416, "SIZE_INVALID")
    assert r.headers["content-range"] == "bytes */100"


@pytest.mark.berth_only  # Distribution 2.8 answers PAGINATION_NUMBER_INVALID (not a spec code)
@pytest.mark.parametrize("query", ["n=abc", "n=-1", "n=99999999999999999999"])
async def test_bad_page_size_is_400_with_a_spec_code(
    client: httpx.AsyncClient, repo: str, query: str
) -> None:
    await push_image(client, repo, "v1")
    for path in (f"/v2/{repo}/tags/list?{query}", f"/v2/_catalog?{query}"):
        r = await client.get(path)
        assert_error(r, 400, "UNSUPPORTED")


@pytest.mark.berth_only  # Distribution 2.8 answers some with plain text or a 500
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/{repo}/tags/list?last=%00"),
        ("GET", "/v2/_catalog?last=%00"),
        ("GET", "/v2/{repo}/referrers/sha256:XYZ"),
        ("GET", "/v2/{repo}/blobs/sha256:XYZ"),
        ("POST", "/v2/{repo}/blobs/uploads/?digest=sha256:XYZ"),
        ("GET", "/v2/{repo}/nosuchendpoint"),
        ("POST", "/v2/{repo}/manifests/v1"),  # 405 (a PATCH would mark route="unmatched" metrics)
    ],
)
async def test_other_4xx_carry_spec_codes(
    client: httpx.AsyncClient, repo: str, method: str, path: str
) -> None:
    await push_image(client, repo, "v1")
    r = await client.request(method, path.format(repo=repo), content=b"abc")
    assert 400 <= r.status_code < 500, r.text
    assert_spec_codes(r)

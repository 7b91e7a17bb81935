"""Error bodies, repository name rules and garbage input.

OCI distribution spec v1.1, "Error Codes" (every JSON 4xx body is ``{"errors": [...]}``),
"Pulling manifests" (name and tag grammar) and Berth's feed rule (``FEED/IMAGE``; docs/DESIGN.md).
Garbage must never produce a 5xx.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.spec.conftest import Registry
from tests.spec.helpers import OCI_MANIFEST, assert_error, error_codes, push_image, random_blob, start_upload
from tests.spec.test_error_codes import SPEC_CODES

DEVIATES = pytest.mark.berth_only  # Distribution 2.8 answers this one with a 500


def case(method: str, path: str, body: bytes = b"", deviates: bool = False, **headers: str) -> object:
    """A malformed request; ``{repo}`` in ``path`` is the test's repository."""
    marks = [DEVIATES] if deviates else []
    return pytest.param(method, path, headers, body, id=f"{method} {path[:60]}", marks=marks)


GARBAGE = [
    case("GET", "/v2/{repo}/blobs/sha256:XYZ"),
    case("HEAD", "/v2/{repo}/blobs/md5:abc"),
    case("GET", "/v2/{repo}/manifests/sha256:XYZ", deviates=True),
    case("DELETE", "/v2/{repo}/blobs/sha256:XYZ"),
    case("POST", "/v2/{repo}/blobs/uploads/?digest=sha256:XYZ", b"abc"),
    case("POST", "/v2/{repo}/blobs/uploads/?mount=sha256:XYZ&from={repo}"),
    case("GET", "/v2/{repo}/tags/list?n=-1"),
    case("GET", "/v2/{repo}/tags/list?n=abc"),
    case("GET", "/v2/{repo}/tags/list?n=99999999999999999999999&last=" + "z" * 300),
    case("GET", "/v2/_catalog?n=-5"),
    case("GET", "/v2/_catalog?n=abc&last=%00"),
    case("PUT", "/v2/{repo}/manifests/v1", b"", Content_Type=OCI_MANIFEST),
    case("PUT", "/v2/{repo}/manifests/v1", b"\xff\xfe\x00garbage", Content_Type=OCI_MANIFEST),
    case("PUT", "/v2/{repo}/manifests/v1", b"{}", Content_Type="text/plain"),
    case("PUT", "/v2/{repo}/manifests/" + "a" * 129, b"{}", Content_Type=OCI_MANIFEST),
    case("GET", "/v2/{repo}/manifests/" + "a" * 129),
    case("GET", "/v2/{repo}/%2e%2e/%2e%2e/manifests/v1"),
    case("GET", "/v2/{repo}/..%2f..%2fetc/manifests/v1"),
    case("GET", "/v2/{repo}/blobs/uploads/..%2f..%2f"),
    case("PATCH", "/v2/{repo}/blobs/uploads/not-a-uuid", b"x", Content_Range="0-0"),
    case("PUT", "/v2/{repo}/manifests/v1", b"{}", deviates=True, Content_Type=OCI_MANIFEST),
]


def header_names(headers: dict[str, str]) -> dict[str, str]:
    """``Content_Type`` → ``Content-Type`` (keyword-argument spelling to header names)."""
    return {k.replace("_", "-"): v for k, v in headers.items()}


async def check_not_5xx(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body: bytes
) -> httpx.Response:
    r = await client.request(method, path, headers=headers, content=body)
    assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text[:200]}"
    return r


@pytest.mark.parametrize(("method", "path", "headers", "body"), GARBAGE)
async def test_garbage_never_gives_5xx(
    client: httpx.AsyncClient, repo: str, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    await push_image(client, repo, "v1")
    await check_not_5xx(client, method, path.format(repo=repo), header_names(headers), body)


async def test_garbage_content_range_never_gives_5xx(client: httpx.AsyncClient, repo: str) -> None:
    for value in (
        "99999999999999999999999-99999999999999999999999",
        "-1-5",
        "bytes=0-1",
        "0-",
        "ab-cd",
        "1-0",
    ):
        location = (await start_upload(client, repo)).headers["location"]
        await check_not_5xx(client, "PATCH", location, {"Content-Range": value}, random_blob(8))


@pytest.mark.berth_only  # Distribution 2.8 answers some of these with plain-text 404s (no route)
@pytest.mark.parametrize(("method", "path", "headers", "body"), GARBAGE)
async def test_garbage_4xx_have_json_error_bodies(
    client: httpx.AsyncClient, repo: str, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    await push_image(client, repo, "v1")
    r = await check_not_5xx(client, method, path.format(repo=repo), header_names(headers), body)
    if 400 <= r.status_code < 500 and method != "HEAD":
        codes = error_codes(r)
        assert codes, f"{method} {path}: {r.status_code} {r.text[:200]}"
        assert set(codes) <= SPEC_CODES


async def test_literal_dot_dot_path_is_not_a_server_error(registry: Registry, repo: str) -> None:
    """httpx normalises ``..`` away, so send the request line by hand."""
    base_url = httpx.URL(registry.base_url)
    path = f"/v2/{repo}/../../etc/passwd/manifests/v1"
    if base_url.scheme != "http" or not base_url.port:  # in-process app: drive ASGI directly
        status = await _asgi_status(registry.client, path)
        assert status < 500 and status != 200
        return
    reader, writer = await asyncio.open_connection(base_url.host, base_url.port)
    request = f"GET {path} HTTP/1.1\r\nHost: {base_url.host}\r\nConnection: close\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    status = int(status_line.split()[1])
    assert status < 500 and status != 200


async def _asgi_status(client: httpx.AsyncClient, path: str) -> int:
    """Send ``GET path`` (unnormalised) straight to the ASGI app behind ``client``."""
    app = client._transport.app  # type: ignore[attr-defined]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"berth.test")],
        "client": ("127.0.0.1", 1),
        "server": ("berth.test", 80),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))  # type: ignore[call-overload]

    await app(scope, receive, send)
    return statuses[0]


@pytest.mark.berth_only  # Distribution 2.8 answers 500 for a 300-character name
async def test_overlong_name_is_name_invalid(client: httpx.AsyncClient, feed: str) -> None:
    name = f"{feed}/{'a' * 300}"
    assert_error(await client.post(f"/v2/{name}/blobs/uploads/"), 400, "NAME_INVALID")
    assert_error(await client.get(f"/v2/{name}/tags/list"), 400, "NAME_INVALID")


@pytest.mark.berth_only  # Distribution 2.8 answers a plain-text 404 (no route)
@pytest.mark.parametrize("image", ["UPPER", "a..b", "-lead", "trail-", "a//b"])
async def test_name_outside_the_grammar_is_name_invalid(
    client: httpx.AsyncClient, feed: str, image: str
) -> None:
    r = await client.post(f"/v2/{feed}/{image}/blobs/uploads/")
    assert_error(r, 400, "NAME_INVALID")


@pytest.mark.berth_only  # Berth's feed rule: a repository is FEED/IMAGE
async def test_single_component_name_is_name_invalid(client: httpx.AsyncClient, feed: str) -> None:
    assert_error(await client.post("/v2/lonely/blobs/uploads/"), 400, "NAME_INVALID")
    body = b'{"schemaVersion":2}'
    r = await client.put("/v2/lonely/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "NAME_INVALID")


@pytest.mark.berth_only  # Berth's feed rule; Distribution answers 404 for names outside its grammar
@pytest.mark.parametrize("name", ["lonely", "dmc/UPPER"])
async def test_head_of_a_name_that_is_no_repository_is_404(client: httpx.AsyncClient, name: str) -> None:
    """A HEAD answer has no body to say why a name is invalid (clients print a bare "400 (Bad
    Request)"): it answers 404, and the GET or upload POST that follows carries NAME_INVALID."""
    blob = f"/v2/{name}/blobs/sha256:{'a' * 64}"
    assert (await client.head(blob)).status_code == 404
    assert (await client.head(f"/v2/{name}/manifests/v1")).status_code == 404
    assert_error(await client.get(blob), 400, "NAME_INVALID")
    assert_error(await client.post(f"/v2/{name}/blobs/uploads/"), 400, "NAME_INVALID")


@pytest.mark.berth_only  # Berth's feed rule: the feed must exist
async def test_unknown_feed_is_name_unknown(client: httpx.AsyncClient, feed: str) -> None:
    name = f"{feed}-nosuchfeed/img"
    assert_error(await client.post(f"/v2/{name}/blobs/uploads/"), 404, "NAME_UNKNOWN")
    assert_error(await client.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(await client.get(f"/v2/{name}/manifests/v1"), 404, "NAME_UNKNOWN")


async def test_error_bodies_use_spec_codes(client: httpx.AsyncClient, repo: str) -> None:
    """A sample of ordinary 4xx answers: JSON ``{"errors": [{"code", "message"?, "detail"?}]}``."""
    await push_image(client, repo, "v1")
    for r in (
        await client.get(f"/v2/{repo}/manifests/nope", headers={"Accept": OCI_MANIFEST}),
        await client.get(f"/v2/{repo}/blobs/sha256:{'0' * 64}"),
        await client.get(f"/v2/{repo}-missing/tags/list"),
    ):
        assert 400 <= r.status_code < 500
        errors = r.json()["errors"]
        assert errors and all(
            e["code"] in SPEC_CODES and e["code"].replace("_", "").isupper() for e in errors
        )

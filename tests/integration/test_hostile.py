"""Hostile input: garbage that must come back as a 4xx OCI error body, never a 500.

Found by fuzzing Berth in process (``berth_app``); each test pins one finding.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest

from berth.token_auth import scopes_for
from tests.integration.test_gc import commit_session_data
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration


def _error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    code: str = r.json()["errors"][0]["code"]
    return code


async def _nul_requests(berth: BerthApp) -> list[tuple[str, httpx.Response]]:
    c = berth.client
    digest = "sha256:" + "a" * 64
    return [
        ("tags last", await c.get("/v2/nul/img/tags/list?last=%00")),
        ("catalog last", await c.get("/v2/_catalog?last=a%00")),
        ("referrers artifactType", await c.get(f"/v2/nul/img/referrers/{digest}?artifactType=%00")),
        ("feed get", await c.get("/api/feeds/%00")),
        ("feed delete", await c.delete("/api/feeds/%00")),
        ("feed description", await c.post("/api/feeds", json={"name": "nul2", "description": "\0"})),
        ("feed patch", await c.patch("/api/feeds/nul", json={"description": "a\0"})),
        ("user email", await c.post("/api/users", json={"name": "u", "password": "p", "email": "\0"})),
        ("group member", await c.post("/api/groups/%00/members", json={"user": "\0"})),
        (
            "privilege principal",
            await c.post(
                "/api/privileges", json={"principal_kind": "user", "principal": "\0", "privilege": "view"}
            ),
        ),
        ("key feeds", await c.post("/api/keys", json={"feeds": ["\0"]})),
        ("key delete", await c.delete("/api/keys/%00")),
    ]


async def test_nul_characters_are_400_not_500() -> None:
    """A NUL in a query parameter, path segment or JSON string cannot reach PostgreSQL as text
    (``invalid byte sequence for encoding "UTF8": 0x00``); it used to surface as 500 UNKNOWN."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("nul")
        for label, r in await _nul_requests(berth):
            assert 400 <= r.status_code < 500, (label, r.status_code, r.text[:300])
            assert r.json()["errors"][0]["code"], label
        assert [f["name"] for f in (await berth.client.get("/api/feeds")).json()] == ["nul"]


async def test_nul_in_token_credentials_is_a_4xx() -> None:
    async with berth_app(with_bus=False) as berth:
        raw = httpx.AsyncClient(transport=berth.client._transport, base_url="http://berth.test")
        async with raw:
            r = await raw.post(
                "/token",
                content=b"grant_type=password&username=%00&password=%00",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert 400 <= r.status_code < 500 and r.json()["errors"][0]["code"], r.text
            basic = "Basic " + base64.b64encode(b"\0:\0").decode()
            r = await raw.get("/token", headers={"Authorization": basic})
            assert _error_code(r, 401) == "UNAUTHORIZED"


async def _session_with_crash_leftovers(berth: BerthApp, repo: str) -> str:
    """A session holding ``hello`` (acknowledged) plus bytes a killed PATCH left in storage.

    A SIGKILL while a PATCH streams leaves the appended bytes on disk (no rollback runs) but no
    ``ChunkReceived`` event: the recorded size stays 5 while the stored data is longer.
    """
    r = await berth.client.post(f"/v2/{repo}/blobs/uploads/")
    location = r.headers["location"]
    r = await berth.client.patch(location, content=b"hello", headers={"Content-Range": "0-4"})
    assert r.status_code == 202 and r.headers["range"] == "0-4", r.text
    upload_id = location.rsplit("/", 1)[1]
    folder = berth.settings.storage.root / "uploads" / upload_id
    (segment,) = [p for p in folder.iterdir() if p.name.startswith("data~seg-") and ".claim-" not in p.name]
    with segment.open("ab") as f:  # the filesystem writer's segment file (storage/_fswriter.py)
        f.write(b"-garbage from a killed request-")
    return location


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_session_continues_after_a_killed_patch() -> None:
    """Unacknowledged bytes past the recorded size used to make every later PATCH 416 forever."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("crash")
        location = await _session_with_crash_leftovers(berth, "crash/img")
        r = await berth.client.get(location)
        assert r.status_code == 204 and r.headers["range"] == "0-4"
        r = await berth.client.patch(location, content=b"world", headers={"Content-Range": "5-9"})
        assert r.status_code == 202 and r.headers["range"] == "0-9", r.text
        r = await berth.client.put(f"{location}?digest={_sha256(b'helloworld')}")
        assert r.status_code == 201, r.text
        r = await berth.client.get(f"/v2/crash/img/blobs/{_sha256(b'helloworld')}")
        assert r.content == b"helloworld"


async def test_completing_after_a_killed_patch_stores_only_acknowledged_bytes() -> None:
    """The digest was checked over the recorded bytes but the whole file was moved into place:
    the content stored under ``sha256(hello)`` held ``hello`` plus the leftovers."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("crash")
        location = await _session_with_crash_leftovers(berth, "crash/img")
        r = await berth.client.put(f"{location}?digest={_sha256(b'hello')}")
        assert r.status_code == 201, r.text
        r = await berth.client.get(f"/v2/crash/img/blobs/{_sha256(b'hello')}")
        assert r.status_code == 200 and r.content == b"hello"
        hexdigest = _sha256(b"hello").split(":")[1]
        stored = berth.settings.storage.root / "blobs/sha256" / hexdigest[:2] / hexdigest
        assert stored.read_bytes() == b"hello"  # GET serves the recorded size; the file must match


async def test_requests_to_unknown_sessions_leave_no_per_session_state() -> None:
    """Each PATCH/PUT/DELETE to any upload id used to add an ``asyncio.Lock`` that was never
    dropped (only a completed or cancelled session's was): unbounded growth per bogus id."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("locks")
        for i in range(20):
            r = await berth.client.patch(f"/v2/locks/img/blobs/uploads/{uuid.uuid4()}", content=b"x")
            assert _error_code(r, 404) == "BLOB_UPLOAD_UNKNOWN"
            r = await berth.client.delete(f"/v2/locks/img/blobs/uploads/junk-{i}")
            assert _error_code(r, 404) == "BLOB_UPLOAD_UNKNOWN"
        r = await berth.client.post("/v2/locks/img/blobs/uploads/")
        r = await berth.client.patch(r.headers["location"], content=b"abc")
        assert r.status_code == 202
        uploads = berth.app.state.blob_uploads  # no per-session state in any process at all
        assert not any(isinstance(v, dict | list | set) for v in vars(uploads).values())


@pytest.mark.parametrize("repo", ["feed/tags", "feed/blobs/x", "feed/manifests", "feed/referrers/a"])
def test_registry_auth_scopes_repositories_named_like_endpoints(repo: str) -> None:
    """``RegistryAuth`` (CLI and tests) asked for ``repository:feed:…`` for ``feed/tags/…``:
    the first ``/tags/`` in the path was taken as the endpoint, so every push got 401."""
    digest = "sha256:" + "a" * 64
    for path in (
        "blobs/uploads/",
        f"blobs/uploads/{uuid.uuid4()}",
        f"blobs/{digest}",
        "manifests/latest",
        "tags/list",
        f"referrers/{digest}",
    ):
        request = httpx.Request("PUT", f"http://berth.test/v2/{repo}/{path}")
        assert scopes_for(request) == f"repository:{repo}:pull,push,delete", path


async def test_push_to_a_repository_named_tags() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("feed")
        r = await berth.client.post(f"/v2/feed/tags/blobs/uploads/?digest={_sha256(b'{}')}", content=b"{}")
        assert r.status_code == 201, r.text
        r = await berth.client.get("/v2/feed/tags/tags/list")
        assert _error_code(r, 404) == "NAME_UNKNOWN"  # a blob alone makes no repository listing


async def test_non_ascii_basic_credentials_are_401() -> None:
    """``base64.b64decode`` raises plain ValueError for non-ASCII text: it was a 500."""
    async with berth_app(with_bus=False) as berth:
        raw = httpx.AsyncClient(transport=berth.client._transport, base_url="http://berth.test")
        async with raw:
            r = await raw.get("/token", headers=[(b"Authorization", b"Basic \xe9\xe9==")])
            assert _error_code(r, 401) == "UNAUTHORIZED"


async def test_client_disconnect_mid_patch_is_a_quiet_4xx() -> None:
    """A client that goes away mid-body raised ``ClientDisconnect`` out of the app: logged as
    500 with an ASGI traceback. Nothing of the partial chunk may stay in the session."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gone")
        r = await berth.client.post("/v2/gone/img/blobs/uploads/")
        location = r.headers["location"]
        token = berth.client.auth.tokens["repository:gone/img:pull,push,delete"]  # type: ignore[union-attr]
        incoming: list[dict[str, Any]] = [
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.disconnect"},
        ]
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "PATCH",
            "scheme": "http",
            "path": location,
            "raw_path": location.encode(),
            "query_string": b"",
            "root_path": "",
            "server": ("berth.test", 80),
            "client": ("127.0.0.1", 5000),
            "headers": [
                (b"host", b"berth.test"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-length", b"10"),
            ],
        }
        await berth.app(scope, receive, send)
        assert 400 <= sent[0]["status"] < 500, sent
        r = await berth.client.get(location)
        assert r.status_code == 204 and r.headers["range"] == "0-0"


async def test_manifest_put_racing_feed_delete_is_201_or_404() -> None:
    """The manifest PUT checked the feed without locking it; a concurrent feed DELETE then made
    the repository insert fail its foreign key: 500. (The FK kept the tables consistent.)"""
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    async with berth_app(with_bus=False) as berth:
        c = berth.client
        for i in range(6):
            await berth.create_feed(f"race{i}")
            await c.post(f"/v2/race{i}/img/blobs/uploads/?digest={_sha256(b'{}')}", content=b"{}")
            config = {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha256(b"{}"),
                "size": 2,
            }
            manifest = json.dumps(
                {"schemaVersion": 2, "mediaType": manifest_type, "config": config, "layers": []}
            ).encode()
            put, delete = await asyncio.gather(
                c.put(
                    f"/v2/race{i}/img/manifests/v1", content=manifest, headers={"Content-Type": manifest_type}
                ),
                c.delete(f"/api/feeds/race{i}"),
            )
            assert delete.status_code == 204, delete.text
            assert put.status_code == 201 or _error_code(put, 404) == "NAME_UNKNOWN", put.text


async def test_completing_after_a_crash_between_move_and_commit() -> None:
    """Killed after the verified data moved to its content address but before the commit: a
    restarted server (no hash state in memory) answered the completing PUT with 500
    (ObjectNotFound on the session's data). The bytes are at the address: the PUT can finish."""
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("moved")
        r = await berth.client.post("/v2/moved/img/blobs/uploads/")
        location = r.headers["location"]
        r = await berth.client.patch(location, content=b"hello", headers={"Content-Range": "0-4"})
        assert r.status_code == 202
        upload_id = location.rsplit("/", 1)[1]
        root = berth.settings.storage.root
        hexdigest = _sha256(b"hello").split(":")[1]
        target = root / "blobs/sha256" / hexdigest[:2] / hexdigest
        target.parent.mkdir(parents=True)
        (root / await commit_session_data(berth, upload_id)).rename(target)  # the commit's first step
        r = await berth.client.put(f"{location}?digest={_sha256(b'hello')}")
        assert r.status_code == 201, r.text
        assert (await berth.client.get(f"/v2/moved/img/blobs/{_sha256(b'hello')}")).content == b"hello"
        r = await berth.client.post("/v2/moved/img/blobs/uploads/")
        location = r.headers["location"]
        await berth.client.patch(location, content=b"bye", headers={"Content-Range": "0-2"})
        await berth.storage.delete(f"uploads/{location.rsplit('/', 1)[1]}")  # the session's data is gone
        r = await berth.client.put(f"{location}?digest={_sha256(b'bye')}")
        assert _error_code(r, 400) == "BLOB_UPLOAD_INVALID"
        assert _error_code(await berth.client.get(location), 404) == "BLOB_UPLOAD_UNKNOWN"

"""One writer per upload session across processes; content at a digest is never replaced.

Issue 9, item 1 (adversarial review of 0ca8e27): with two server processes, racing PATCHes at
offset 0 both got 202, and the PUT checked the digest against what one process had hashed in
memory — the file behind a digest other images used then held other bytes. Each test here runs
two real ``berth serve all`` processes on one database and one blob store
(``tests.support.cluster``) and sends requests to both.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from berth_common.storage import create_driver
from tests.support.cluster import Cluster, cluster
from tests.support.stores import S3Server

pytestmark = pytest.mark.e2e

MiB = 1 << 20
TRIALS_SECONDS = 30.0  # the racing trials loop this long at most (a bound, not a measure)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def content_file(group: Cluster, feed: str, digest: str) -> Path:
    hexdigest = digest.split(":", 1)[1]
    return group.storage_root / "blobs" / "sha256" / hexdigest[:2] / hexdigest  # the store's root


async def _admin_setup(group: Cluster) -> None:
    async with group.client(0) as admin:
        assert (await admin.post("/api/feeds", json={"name": "a"})).status_code == 201
        r = await admin.post("/api/users", json={"name": "mallory", "password": "mallory-pw-1"})
        assert r.status_code in (200, 201), r.text
        rule = {"principal_kind": "user", "principal": "mallory", "privilege": "add", "feed": "a",
                "effect": "grant"}  # fmt: skip
        assert (await admin.post("/api/privileges", json=rule)).status_code in (200, 201)


async def _monolithic(client: httpx.AsyncClient, repository: str, data: bytes) -> None:
    r = await client.post(f"/v2/{repository}/blobs/uploads/?digest={sha256(data)}", content=data)
    assert r.status_code == 201, r.text


async def test_racing_patches_never_replace_the_content_behind_a_digest(tmp_path: Path) -> None:
    """The review's attack, as done: a user with only Add opens a session in ``a/attack`` and
    sends four PATCHes at once, all ``Content-Range: 0-1999999`` — one with layer X (already
    pushed by the admin as ``a/victim``), three with random Y — to both processes, then PUTs
    ``?digest=sha256(X)``. At most one PATCH may be acknowledged, and whatever the PUT answers,
    the bytes behind X's digest stay X."""
    async with cluster(tmp_path) as group:
        await _admin_setup(group)
        x = os.urandom(2_000_000)
        async with group.client(0) as admin:
            await _monolithic(admin, "a/victim", x)
        stored = content_file(group, "a", sha256(x))
        assert stored.read_bytes() == x
        clients = [group.client(i, "mallory", "mallory-pw-1") for i in (0, 1)]
        trials, outcomes, deadline = 0, set(), time.monotonic() + TRIALS_SECONDS
        try:
            while trials < 20 and time.monotonic() < deadline:
                trials += 1
                outcomes.add(await _attack(clients, x))
                assert stored.read_bytes() == x, f"trial {trials}: the content behind X changed"
                async with group.client(1) as admin:
                    r = await admin.get(f"/v2/a/victim/blobs/{sha256(x)}")
                    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha256(x)[7:]
        finally:
            for client in clients:
                await client.aclose()
        assert trials >= 5, group.logs()
        assert outcomes <= {"committed-x", "digest-invalid"}, outcomes


async def _attack(clients: list[httpx.AsyncClient], x: bytes) -> str:
    r = await clients[0].post("/v2/a/attack/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    bodies = [x] + [os.urandom(len(x)) for _ in range(3)]
    headers = {"Content-Range": f"0-{len(x) - 1}"}
    answers = await asyncio.gather(*(
        clients[i % 2].patch(location, content=body, headers=headers) for i, body in enumerate(bodies)
    ))  # fmt: skip
    accepted = [i for i, a in enumerate(answers) if a.status_code == 202]
    assert len(accepted) <= 1, [a.status_code for a in answers]
    for a in answers:
        assert a.status_code in (202, 416, 429), (a.status_code, a.text)
        assert "errors" in a.json() if a.status_code != 202 else True
    r = await clients[1].put(location, params={"digest": sha256(x)})
    if accepted == [0]:  # X's bytes were the ones kept
        assert r.status_code == 201, r.text
        return "committed-x"
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID", r.text
    return "digest-invalid"


async def test_concurrent_patches_without_range_lose_no_acknowledged_chunk(tmp_path: Path) -> None:
    """12 PATCHes without ``Content-Range`` to one session from both processes: every 202 is
    for bytes that are in the blob, where its ``Range`` says (9 of 10 sessions lost chunks)."""
    async with cluster(tmp_path) as group:
        async with group.client(0) as admin:
            assert (await admin.post("/api/feeds", json={"name": "a"})).status_code == 201
        clients = [group.client(i) for i in (0, 1)]
        try:
            for _ in range(5):
                await _twelve_patches(clients)
        finally:
            for client in clients:
                await client.aclose()


async def _twelve_patches(clients: list[httpx.AsyncClient]) -> None:
    location = (await clients[0].post("/v2/a/chunks/blobs/uploads/")).headers["location"]
    chunks = [bytes([i]) * (100_000 + i) for i in range(12)]
    answers = await asyncio.gather(*(
        clients[i % 2].patch(location, content=chunk) for i, chunk in enumerate(chunks)
    ))  # fmt: skip
    placed: dict[int, bytes] = {}
    for chunk, answer in zip(chunks, answers, strict=True):
        assert answer.status_code in (202, 416, 429), (answer.status_code, answer.text)
        if answer.status_code == 202:
            end = int(answer.headers["range"].split("-")[1])
            placed[end + 1 - len(chunk)] = chunk
    assert placed, "no PATCH was accepted"
    blob = b"".join(placed[offset] for offset in sorted(placed))
    assert sorted(placed) == [sum(len(placed[o]) for o in sorted(placed) if o < k) for k in sorted(placed)]
    status = await clients[1].get(location)
    assert status.headers["range"] == f"0-{len(blob) - 1}"
    r = await clients[1].put(location, params={"digest": sha256(blob)})
    assert r.status_code == 201, r.text
    got = await clients[0].get(f"/v2/a/chunks/blobs/{sha256(blob)}")
    assert got.content == blob


async def test_chunked_upload_alternating_between_processes(tmp_path: Path) -> None:
    """A chunked upload whose PATCHes alternate between two processes completes with the right
    digest (the hash state travels with the session, not with a process)."""
    async with cluster(tmp_path) as group:
        clients = [group.client(i) for i in (0, 1)]
        try:
            assert (await clients[0].post("/api/feeds", json={"name": "a"})).status_code == 201
            data = os.urandom(7 * MiB + 123)
            location = (await clients[0].post("/v2/a/alt/blobs/uploads/")).headers["location"]
            offset, piece = 0, MiB + 7
            for n, start in enumerate(range(0, len(data), piece)):
                chunk = data[start : start + piece]
                headers = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                r = await clients[n % 2].patch(location, content=chunk, headers=headers)
                assert r.status_code == 202, r.text
                offset += len(chunk)
                location = r.headers["location"]
            r = await clients[1].put(location, params={"digest": sha256(data)})
            assert r.status_code == 201, r.text
            got = await clients[0].get(f"/v2/a/alt/blobs/{sha256(data)}")
            assert got.content == data
        finally:
            for client in clients:
                await client.aclose()


async def test_chunked_upload_alternating_between_processes_on_s3(
    tmp_path: Path, s3_server: S3Server
) -> None:
    """The same on one S3 store (issue 15, part 5): PATCHes of 3 MiB + 7, 6 MiB, 1 MiB, 7 MiB
    + 3 and the rest alternate between the two processes, so each PATCH resumes the multipart
    upload (and the sub-5 MiB tail object) that the other process recorded. The blob lands at
    its content address with the right digest, and the session leaves no object, multipart
    upload or tail behind."""
    bucket = s3_server.new_bucket()
    store = {"BERTH_STORAGE__KIND": "s3", "BERTH_STORAGE__BUCKET": bucket, "BERTH_STORAGE__PREFIX": "berth",
             "BERTH_STORAGE__ENDPOINT": s3_server.endpoint, "BERTH_STORAGE__REGION": s3_server.region,
             "BERTH_STORAGE__REDIRECT": "false", "AWS_ACCESS_KEY_ID": s3_server.access_key,
             "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}  # fmt: skip
    data = os.urandom(24 * MiB + 11)
    pieces = [3 * MiB + 7, 6 * MiB, MiB, 7 * MiB + 3]
    pieces.append(len(data) - sum(pieces))
    async with cluster(tmp_path, 2, **store) as group:
        clients = [group.client(i) for i in (0, 1)]
        try:
            assert (await clients[0].post("/api/feeds", json={"name": "a"})).status_code == 201
            location = (await clients[0].post("/v2/a/alt/blobs/uploads/")).headers["location"]
            offset = 0
            for n, size in enumerate(pieces):
                chunk = data[offset : offset + size]
                headers = {"Content-Range": f"{offset}-{offset + size - 1}"}
                r = await clients[n % 2].patch(location, content=chunk, headers=headers)
                assert r.status_code == 202, r.text
                assert r.headers["range"] == f"0-{offset + size - 1}"
                offset += size
                location = r.headers["location"]
            r = await clients[1].put(location, params={"digest": sha256(data)})
            assert r.status_code == 201, r.text
            got = await clients[0].get(f"/v2/a/alt/blobs/{sha256(data)}")
            assert got.status_code == 200 and got.content == data
        finally:
            for client in clients:
                await client.aclose()
    driver = create_driver("s3", **s3_server.options(bucket, "berth"))
    try:
        hexdigest = sha256(data).removeprefix("sha256:")
        assert [path async for path in driver.list("")] == [f"blobs/sha256/{hexdigest[:2]}/{hexdigest}"]
        assert [pending async for pending in driver.pending("")] == []
        stored = b"".join([chunk async for chunk in driver.read(f"blobs/sha256/{hexdigest[:2]}/{hexdigest}")])
        assert stored == data
    finally:
        await driver.close()


async def test_a_writer_killed_mid_patch_is_taken_over(tmp_path: Path) -> None:
    """Process A dies (SIGKILL) while streaming a PATCH: its lease expires, process B takes the
    session over from the last recorded byte and the upload completes with the right digest; the
    bytes A streamed but never recorded are not part of the blob."""
    async with cluster(tmp_path, BERTH_UPLOADS__LEASE_SECONDS="1") as group:
        survivor = group.client(1)
        try:
            assert (await survivor.post("/api/feeds", json={"name": "a"})).status_code == 201
            first, rest = os.urandom(3 * MiB), os.urandom(2 * MiB)
            location = (await survivor.post("/v2/a/crash/blobs/uploads/")).headers["location"]
            r = await survivor.patch(
                location, content=first, headers={"Content-Range": f"0-{len(first) - 1}"}
            )
            assert r.status_code == 202, r.text
            streaming = asyncio.Event()

            async def endless() -> AsyncIterator[bytes]:
                yield os.urandom(MiB)
                streaming.set()
                while True:
                    yield os.urandom(64 * 1024)
                    await asyncio.sleep(0.01)

            async with group.client(0) as doomed:
                patch = asyncio.create_task(doomed.patch(location, content=endless()))
                await asyncio.wait_for(streaming.wait(), 30)
                await asyncio.sleep(0.5)
                group.servers[0].kill()
                with pytest.raises(httpx.HTTPError):
                    await patch
            headers = {"Content-Range": f"{len(first)}-{len(first) + len(rest) - 1}"}
            r = await survivor.patch(location, content=rest, headers=headers)
            assert r.status_code == 202, r.text
            r = await survivor.put(location, params={"digest": sha256(first + rest)})
            assert r.status_code == 201, r.text
            got = await survivor.get(f"/v2/a/crash/blobs/{sha256(first + rest)}")
            assert got.content == first + rest
        finally:
            await survivor.aclose()

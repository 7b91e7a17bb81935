"""Crashes of ``berth up``: SIGKILL in the middle of requests, restart, nothing half done.

After a restart the interrupted upload session can be continued (or cancelled), and the
projections equal a rebuild from the event store (no projection row without its event).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from berth.ops_cli import rebuild_all
from berth.token_auth import RegistryAuth
from tests.e2e.conftest import scratch_stream
from tests.integration.test_rebuild import snapshot
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, BerthProcess, berth_process
from tests.support.databases import NATS_URL, delete_stream, temporary_database, unique

pytestmark = pytest.mark.e2e
REPO = "crash/img"
SCOPE = f"repository:{REPO}:pull,push,delete"


def _token(auth: RegistryAuth, berth: BerthProcess) -> str:
    """A bearer token for REPO (fetched through the challenge by a status request)."""
    httpx.get(f"{berth.url}/v2/{REPO}/tags/list", auth=auth)
    return auth.tokens[SCOPE]


def _kill_mid_request(
    berth: BerthProcess, request_head: bytes, body: bytes, upload_dir: Path | None = None
) -> None:
    """Send ``request_head`` and ``body`` (short of what it declares), then SIGKILL the server.

    With ``upload_dir`` it waits until some body bytes reached the session's data file first.
    """
    host, port = berth.host.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request_head + body)
        deadline = time.monotonic() + 30
        while upload_dir is not None and time.monotonic() < deadline:
            if _stored_bytes(upload_dir) > 0:
                break
            time.sleep(0.05)
        os.killpg(berth.proc.pid, signal.SIGKILL)
        berth.proc.wait(10)


def _stored_bytes(upload_dir: Path) -> int:
    """Bytes in the session's data files (the filesystem writer's segments, ``data~seg-…``)."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for p in upload_dir.iterdir():
            if p.name.startswith("data") and ".claim-" not in p.name:
                with contextlib.suppress(FileNotFoundError):
                    total += p.stat().st_size
    return total


def _head(method: str, path: str, token: str, length: int, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


async def _assert_rebuild_changes_nothing(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        live: dict[str, Any] = await snapshot(conn)
        await rebuild_all(dsn)
        rebuilt = await snapshot(conn)
        assert {t: r for t, r in rebuilt.items() if not t.startswith("gc.")} == {
            t: r for t, r in live.items() if not t.startswith("gc.")
        }
    finally:
        await conn.close()


async def test_sigkill_mid_patch_and_mid_manifest_put_then_restart(scratch_dir: Path) -> None:
    stream = unique("BERTH_E2E_")
    workdir = scratch_dir
    async with temporary_database("berth_e2e_") as dsn:
        try:
            await asyncio.to_thread(_crash_and_recover, workdir, dsn, stream)
            await _assert_rebuild_changes_nothing(dsn)
        finally:
            await delete_stream(stream)


def _crash_and_recover(workdir: Path, dsn: str, stream: str) -> None:
    blob = os.urandom(6 * 1024 * 1024 + 11)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    data_dir = workdir / "data"
    auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
    with berth_process(
        workdir, database_url=dsn, nats_url=NATS_URL, stream=stream, data_dir=data_dir
    ) as berth:
        berth.create_feed("crash")
        start = httpx.post(f"{berth.url}/v2/{REPO}/blobs/uploads/", auth=auth)
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        upload_dir = data_dir / "storage/uploads" / location.rsplit("/", 1)[1]
        head = _head(
            "PATCH", location, _token(auth, berth), len(blob), f"Content-Range: 0-{len(blob) - 1}\r\n"
        )
        _kill_mid_request(berth, head, blob[: len(blob) // 2], upload_dir)
        port = int(berth.host.rsplit(":", 1)[1])
    with berth_process(
        workdir, database_url=dsn, nats_url=NATS_URL, stream=stream, data_dir=data_dir, port=port
    ) as berth:
        status = httpx.get(f"{berth.url}{location}", auth=auth)
        assert status.status_code == 204 and status.headers["range"] == "0-0", status.text
        assert _stored_bytes(upload_dir) > 0  # unacknowledged bytes the kill left
        # The killed process still held the session's lease: this PATCH waits until it expires
        # (at most uploads.lease_seconds, 10 s) before it writes — hence the long timeout.
        patch = httpx.patch(
            f"{berth.url}{location}",
            auth=auth,
            content=blob,
            headers={"Content-Range": f"0-{len(blob) - 1}"},
            timeout=60.0,
        )
        assert patch.status_code == 202, patch.text
        put = httpx.put(f"{berth.url}{location}?digest={digest}", auth=auth)
        assert put.status_code == 201, put.text
        got = httpx.get(f"{berth.url}/v2/{REPO}/blobs/{digest}", auth=auth)
        assert got.status_code == 200 and got.content == blob
        manifest = _manifest(berth, auth, digest, len(blob))
        head = _head(
            "PUT",
            f"/v2/{REPO}/manifests/v1",
            _token(auth, berth),
            len(manifest),
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
        )
        _kill_mid_request(berth, head, manifest[: len(manifest) // 2])
    with berth_process(
        workdir, database_url=dsn, nats_url=NATS_URL, stream=stream, data_dir=data_dir, port=port
    ) as berth:
        assert httpx.get(f"{berth.url}/v2/{REPO}/manifests/v1", auth=auth).status_code == 404
        r = httpx.put(
            f"{berth.url}/v2/{REPO}/manifests/v1",
            auth=auth,
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert r.status_code == 201, r.text
        assert httpx.get(f"{berth.url}/v2/{REPO}/manifests/v1", auth=auth).content == manifest


def _manifest(berth: BerthProcess, auth: RegistryAuth, layer: str, size: int) -> bytes:
    config = b'{"os":"linux","architecture":"amd64"}'
    cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
    r = httpx.post(f"{berth.url}/v2/{REPO}/blobs/uploads/?digest={cdigest}", auth=auth, content=config)
    assert r.status_code == 201, r.text
    return (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cdigest}",'
        f'"size":{len(config)}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar",'
        f'"digest":"{layer}","size":{size}}}]}}'
    ).encode()


def _postmaster(data_dir: Path) -> psutil.Process:
    return psutil.Process(int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))


def test_postgres_outage_is_503_json_and_recovers(scratch_dir: Path) -> None:
    """Embedded PostgreSQL stops (SIGQUIT: immediate shutdown, its unix socket goes away) and
    cannot start again for a while (its ``PG_VERSION`` is hidden, so each restart by ``berth
    up``'s supervisor exits with code 1).

    Requests answer 503 UNAVAILABLE with the OCI body — they used to be 500 UNKNOWN (the
    socket's FileNotFoundError was not seen as an outage) with an ASGI traceback in the log —
    and work again once the supervisor's next restart succeeds, without restarting Berth.
    """
    workdir = scratch_dir
    data_dir = workdir / "data"
    auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
    version = data_dir / "postgres" / "PG_VERSION"
    hidden = version.with_name("PG_VERSION.hidden")
    with (
        scratch_stream() as stream,
        berth_process(
            workdir, database_url=None, nats_url=NATS_URL, stream=stream, data_dir=data_dir
        ) as berth,
    ):
        berth.create_feed("outage")
        assert httpx.get(f"{berth.url}/v2/outage/img/tags/list", auth=auth).status_code == 404
        version.rename(hidden)
        try:
            postmaster = _postmaster(data_dir)
            postmaster.send_signal(signal.SIGQUIT)
            postmaster.wait(30)
            for _ in range(3):  # pooled connections die first, then new ones cannot connect
                r = httpx.get(f"{berth.url}/v2/outage/img/tags/list", auth=auth, timeout=60)
                assert r.status_code == 503, r.text
                assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
            failed_restart = "embedded postgres exited with code 1; restarting it (attempt 2)"
            deadline = time.monotonic() + 120
            while failed_restart not in berth.log():  # the supervisor's first try failed
                assert time.monotonic() < deadline, berth.log()
                time.sleep(0.2)
            r = httpx.get(f"{berth.url}/v2/outage/img/tags/list", auth=auth, timeout=60)
            assert r.status_code == 503, r.text
        finally:
            hidden.rename(version)
        deadline = time.monotonic() + 120
        while (r := httpx.get(f"{berth.url}/v2/outage/img/tags/list", auth=auth)).status_code == 503:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN", r.text
        assert "Exception in ASGI application" not in berth.log()


def test_pushes_survive_a_dead_nats_and_are_published_after_restart(scratch_dir: Path) -> None:
    """Embedded NATS killed: pushes still answer 201 (events wait in the outbox), Berth stops
    cleanly on SIGTERM, and after a restart ``berth events tail`` shows every event."""
    workdir = scratch_dir
    data_dir = workdir / "data"
    auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
    digests = []
    with berth_process(workdir, database_url=None, nats_url=None, stream=None, data_dir=data_dir) as berth:
        berth.create_feed("crash")
        port = int(berth.host.rsplit(":", 1)[1])
        children = psutil.Process(berth.proc.pid).children(recursive=True)
        nats = [child for child in children if "nats-server" in " ".join(child.cmdline())]
        assert len(nats) == 1, [" ".join(c.cmdline()) for c in children]  # the embedded NATS
        nats[0].kill()
        nats[0].wait(30)  # raises psutil.TimeoutExpired if it outlived SIGKILL
        assert not nats[0].is_running()
        for _ in range(3):
            blob = os.urandom(512)
            digests.append("sha256:" + hashlib.sha256(blob).hexdigest())
            r = httpx.post(
                f"{berth.url}/v2/{REPO}/blobs/uploads/?digest={digests[-1]}",
                content=blob,
                auth=auth,
                timeout=60,
            )
            assert r.status_code == 201, r.text
    with berth_process(workdir, database_url=None, nats_url=None, stream=None, data_dir=data_dir, port=port):
        deadline = time.monotonic() + 60
        while True:
            tail = subprocess.run(
                ["uv", "run", "berth", "events", "tail", "--last", "0", "--data-dir", str(data_dir)],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=Path(__file__).resolve().parents[2],
            )
            if all(d in tail.stdout for d in digests) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert all(d in tail.stdout for d in digests), tail.stdout[-3000:] + tail.stderr[-2000:]

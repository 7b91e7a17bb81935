"""Slow clients against a real ``berth serve all --workers 2`` (issue 9 §4), raw sockets.

With a short head deadline and body idle timeout (set through the environment, as an operator
would): many connections trickling a request head are all closed while a normal request is
served, and a PATCH of an upload session or a manifest PUT whose body stalls answers
``400 BLOB_UPLOAD_INVALID`` / ``400 MANIFEST_INVALID`` and closes the connection — whichever of
the two worker processes took it. The upload session stays usable with its offset unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.integration.test_slow_clients import BOUND, read_until_closed, trickle
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER
from tests.support.databases import temporary_database
from tests.support.serve_process import ServeProcess, start, stop, wait_ready

pytestmark = pytest.mark.e2e
HEAD_TIMEOUT, BODY_IDLE = 2, 2  # seconds
TRICKLERS = 200
REPO = "slow/img"


@contextlib.contextmanager
def _server(workdir: Path, database_url: str) -> Iterator[ServeProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env |= {
        "BERTH_DATABASE_URL": database_url,
        "BERTH_STORAGE__ROOT": str(workdir / "storage"),
        "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "BERTH_HTTP__HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "BERTH_HTTP__BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE),
        "BERTH_ACCESS_LOG": "false",
    }
    process = start("berth", ["all", "--workers", "2"], env, workdir)
    try:
        wait_ready([process], "/v2/")
        yield process
    except BaseException:
        print(process.log())
        raise
    finally:
        stop([process])


def _connect(server: ServeProcess) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=BOUND)


def _stalled(server: ServeProcess, head: str) -> tuple[str, dict[str, str]]:
    """Send ``head`` and 10 of the 100 body bytes it declares; return (status line, first error)."""
    with _connect(server) as sock:
        sock.sendall(head.encode() + b"0123456789")
        answer = read_until_closed(sock)
    status, _, body = answer.partition(b"\r\n\r\n")
    return status.split(b"\r\n", 1)[0].decode(), json.loads(body)["errors"][0]


def _trickle_and_serve(server: ServeProcess) -> None:
    socks = [_connect(server) for _ in range(TRICKLERS)]
    received: dict[int, bytes] = {}
    worker = threading.Thread(target=lambda: received.update(trickle(socks, b"GET /v2/ HTTP/1.1\r\nX: ")))
    worker.start()
    try:
        assert httpx.get(f"{server.url}/v2/", timeout=BOUND).status_code == 401  # served meanwhile
    finally:
        worker.join()  # trickle() asserts that every connection was closed
        for sock in socks:
            sock.close()
    assert sum(1 for r in received.values() if r.startswith(b"HTTP/1.1 408")) == TRICKLERS
    # the configured deadline, in both workers (uvicorn spawns them; they read the environment)
    assert all(f"within {HEAD_TIMEOUT} s".encode() in r for r in received.values())


def _stall_bodies(server: ServeProcess) -> None:
    auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
    assert httpx.post(f"{server.url}/api/feeds", json={"name": "slow"}, auth=auth).status_code == 201
    started = httpx.post(f"{server.url}/v2/{REPO}/blobs/uploads/", auth=auth)
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    token = auth.tokens[f"repository:{REPO}:pull,push,delete"]
    common = f"Host: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n"
    for _ in range(4):  # each on a new connection, spread by the kernel over the two workers
        status, error = _stalled(server, f"PATCH {location} HTTP/1.1\r\n{common}\r\n")
        assert status.startswith("HTTP/1.1 400") and error["code"] == "BLOB_UPLOAD_INVALID", (status, error)
        assert f"nothing received for {BODY_IDLE} s" in error["message"]
    session = httpx.get(f"{server.url}{location}", auth=auth)
    assert session.status_code == 204 and session.headers["range"] == "0-0", session.headers  # nothing kept
    media = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
    for _ in range(4):
        status, error = _stalled(server, f"PUT /v2/{REPO}/manifests/v1 HTTP/1.1\r\n{common}{media}\r\n")
        assert status.startswith("HTTP/1.1 400") and error["code"] == "MANIFEST_INVALID", (status, error)


async def test_slow_heads_and_stalled_bodies_with_two_workers(tmp_path: Path) -> None:
    async with temporary_database("berth_slow_") as database_url:

        def run() -> None:
            with _server(tmp_path, database_url) as server:
                _trickle_and_serve(server)
                _stall_bodies(server)

        await asyncio.to_thread(run)

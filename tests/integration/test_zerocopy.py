"""Zero-copy blob GET: FileRangeResponse served by real uvicorn servers (asyncio and uvloop).

Each server runs in a thread of this process, so the module's STATS counters and the open fds
in /proc/self/fd are the server's. Spec: ASGI "Zero Copy Send" extension; RFC 9110 §14 ranges.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from berth_common.http.protocols import uvicorn_http_protocol
from berth_common.http.zerocopy import STATS, FileRangeResponse
from tests.support.net import free_port

SIZE = 64 * 1024 * 1024


@dataclass
class Served:
    url: str
    zerocopy: bool
    loop: str


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("zerocopy") / "blob"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    return path, data


def make_app(path: Path) -> Starlette:
    """GET/HEAD /blob with an optional single ``Range: bytes=a-b``."""

    async def blob(request: Request) -> FileRangeResponse:
        headers = {"x-client-port": str(request.client.port if request.client else 0)}
        spec = request.headers.get("range")
        if spec is None:
            return FileRangeResponse(path, headers=headers)
        first, last = (int(x) for x in spec.removeprefix("bytes=").split("-"))
        headers["content-range"] = f"bytes {first}-{last}/{SIZE}"
        return FileRangeResponse(path, offset=first, count=last - first + 1, status_code=206, headers=headers)

    return Starlette(routes=[Route("/blob", blob, methods=["GET", "HEAD"])])


VARIANTS = [
    ("asyncio", "httptools", True),
    ("uvloop", "httptools", True),
    ("asyncio", "h11", True),
    ("uvloop", "h11", True),
    ("asyncio", "httptools", False),
    ("uvloop", "httptools", False),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}-{'zc' if v[2] else 'plain'}")
def served(request: pytest.FixtureRequest, blob: tuple[Path, bytes]) -> Iterator[Served]:
    loop, http, zerocopy = request.param
    port = free_port()
    config = uvicorn.Config(
        make_app(blob[0]),
        host="127.0.0.1",
        port=port,
        loop=loop,
        http=uvicorn_http_protocol(http) if zerocopy else http,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Served(f"http://127.0.0.1:{port}", zerocopy, loop)
    server.should_exit = True
    thread.join(10)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_path(served: Served, before: dict[str, int], nbytes: int) -> None:
    """The zero-copy variants moved ``nbytes`` in the kernel; the plain ones used the fallback."""
    deadline = time.monotonic() + 5  # the server thread counts after the client may have finished
    while vars(STATS) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    after = vars(STATS)
    if served.zerocopy:
        assert after["bytes_zerocopy"] - before["bytes_zerocopy"] == nbytes
        mechanism = "loop_sendfile" if served.loop == "asyncio" else "os_sendfile"
        assert after[mechanism] > before[mechanism]
        assert after["fallback_responses"] == before["fallback_responses"]
    else:
        assert after["bytes_zerocopy"] == before["bytes_zerocopy"]
        assert after["fallback_responses"] > before["fallback_responses"]


def test_whole_blob(served: Served, blob: tuple[Path, bytes]) -> None:
    before = dict(vars(STATS))
    r = httpx.get(f"{served.url}/blob", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(SIZE)
    assert "transfer-encoding" not in r.headers
    assert sha(r.content) == sha(blob[1])
    check_path(served, before, SIZE)


@pytest.mark.parametrize(("first", "last"), [(0, 0), (SIZE - 1, SIZE - 1), (12345, 12345 + 3 * 1024 * 1024)])
def test_ranges(served: Served, blob: tuple[Path, bytes], first: int, last: int) -> None:
    before = dict(vars(STATS))
    r = httpx.get(f"{served.url}/blob", headers={"range": f"bytes={first}-{last}"}, timeout=30)
    assert r.status_code == 206
    assert r.headers["content-length"] == str(last - first + 1)
    assert r.content == blob[1][first : last + 1]
    check_path(served, before, last - first + 1)


def test_head_sends_headers_only(served: Served) -> None:
    before = dict(vars(STATS))
    r = httpx.head(f"{served.url}/blob", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(SIZE)
    assert r.content == b""
    assert vars(STATS) == before


def test_keep_alive_after_zero_copy(served: Served, blob: tuple[Path, bytes]) -> None:
    with httpx.Client(timeout=30) as client:
        first = client.get(f"{served.url}/blob")
        second = client.get(f"{served.url}/blob", headers={"range": "bytes=10-19"})
    assert sha(first.content) == sha(blob[1])
    assert second.content == blob[1][10:20]
    assert first.headers["x-client-port"] == second.headers["x-client-port"]  # one connection


def open_fds_to(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return count


def test_client_disconnect_mid_transfer(served: Served, blob: tuple[Path, bytes]) -> None:
    aborted = STATS.aborted
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /blob HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 256 * 1024:
            received += len(sock.recv(65536))
    # closed with unread data: the kernel sends RST mid-transfer
    deadline = time.monotonic() + 10
    while open_fds_to(blob[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds_to(blob[0]) == 0, "file descriptor leaked after client disconnect"
    assert STATS.aborted == aborted + served.zerocopy  # the kernel transfer saw the disconnect
    r = httpx.get(f"{served.url}/blob", timeout=30)
    assert sha(r.content) == sha(blob[1])


async def test_response_emits_zerocopysend_message(blob: tuple[Path, bytes]) -> None:
    """Without a server: the message shape of the ASGI Zero Copy Send extension."""
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.zerocopysend":
            file = message["file"]
            assert os.pread(file.fileno(), 4, 100) == blob[1][100:104]  # type: ignore[attr-defined]
        sent.append(message)

    async def receive() -> dict[str, object]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "extensions": {"http.response.zerocopysend": {}}}
    await FileRangeResponse(blob[0], offset=100, count=4)(scope, receive, send)  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.zerocopysend"]
    assert {k: sent[1][k] for k in ("offset", "count", "more_body")} == {
        "offset": 100,
        "count": 4,
        "more_body": False,
    }
    assert (b"content-length", b"4") in sent[0]["headers"]  # type: ignore[operator]
    assert sent[1]["file"].closed  # type: ignore[attr-defined]

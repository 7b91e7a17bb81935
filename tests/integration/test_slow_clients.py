"""Slow clients (issue 9 §4): request-head deadline and request-body idle timeout, on real
uvicorn servers (each in a thread of this process) with Berth's protocol classes, both HTTP/1.1
implementations and both event loops, driven by raw sockets.

The timeouts are short here (``HEAD_TIMEOUT``, ``BODY_IDLE``); the tests never measure time,
they wait (with a generous bound) for what must happen, while the trickling continues at a pace
that would keep the connections open for ever without the timeouts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from berth_common.http.bodies import BodyIdleTimeout
from berth_common.http.errors import install_error_handlers
from berth_common.http.protocols import uvicorn_http_protocol
from tests.support.net import free_port

pytestmark = pytest.mark.integration
HEAD_TIMEOUT = 1.0  # seconds
BODY_IDLE = 1.0  # seconds
BOUND = 30.0  # seconds: the longest any expected close may take on a loaded machine
TRICKLE = 0.2  # seconds between two bytes of a trickling client


class Note(BaseModel):
    text: str


def make_app() -> FastAPI:
    """Routes reading bodies the ways Berth's do: ``request.stream()``, ``request.body()``, a model."""
    app = FastAPI()
    install_error_handlers(app)

    async def streamed(request: Request) -> PlainTextResponse:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return PlainTextResponse(str(size))

    for path in ("/v2/feed/img/blobs/uploads/abc", "/v2/feed/img/manifests/v1"):
        app.add_api_route(path, streamed, methods=["PATCH", "PUT"])

    @app.post("/form")
    async def form(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    @app.post("/note")
    async def note(body: Note) -> PlainTextResponse:
        return PlainTextResponse(body.text)

    @app.get("/")
    async def root() -> PlainTextResponse:
        return PlainTextResponse("ok")

    app.add_middleware(BodyIdleTimeout, seconds=BODY_IDLE)
    return app


@dataclass
class Served:
    host: str
    port: int

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=BOUND)


@pytest.fixture(
    scope="module",
    params=[("uvloop", "httptools"), ("asyncio", "httptools"), ("uvloop", "h11"), ("asyncio", "h11")],
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    loop, http = request.param
    protocol = type("ShortHeadProtocol", (uvicorn_http_protocol(http),), {"header_timeout": HEAD_TIMEOUT})
    port = free_port()
    config = uvicorn.Config(
        make_app(), host="127.0.0.1", port=port, loop=loop, http=protocol, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Served("127.0.0.1", port)
    server.should_exit = True
    thread.join(10)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by ``BOUND``)."""
    sock.settimeout(BOUND)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def trickle(socks: list[socket.socket], first: bytes) -> dict[int, bytes]:
    """Send ``first`` on every socket, then one more header byte every ``TRICKLE`` s on each one
    still open; return what each received before the server closed it (all within ``BOUND``)."""
    for sock in socks:
        sock.sendall(first)
        sock.setblocking(False)
    received: dict[int, bytes] = {}
    open_ = {s.fileno(): s for s in socks}
    deadline = time.monotonic() + BOUND
    while open_ and time.monotonic() < deadline:
        for fd, sock in list(open_.items()):
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                try:
                    sock.send(b"x")
                except OSError:  # reset: closed
                    del open_[fd]
                continue
            except OSError:
                chunk = b""
            if chunk:
                received[fd] = received.get(fd, b"") + chunk
            else:
                del open_[fd]
        time.sleep(TRICKLE)
    assert not open_, f"{len(open_)} of {len(socks)} trickling connections still open after {BOUND}s"
    return received


def test_trickled_heads_are_closed_while_others_are_served(served: Served) -> None:
    socks = [served.connect() for _ in range(50)]
    idle = [served.connect() for _ in range(5)]  # connect, then say nothing
    result: dict[int, bytes] = {}
    worker = threading.Thread(
        target=lambda: result.update(trickle(socks, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "))
    )
    worker.start()
    try:
        with served.connect() as normal:
            normal.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_until_closed(normal).startswith(b"HTTP/1.1 200")
    finally:
        worker.join()
    answers = list(result.values())
    assert len(answers) == 50 and all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
    body = json.loads(answers[0].split(b"\r\n\r\n", 1)[1])
    assert body["errors"][0]["code"] == "REQUEST_TIMEOUT"
    for sock in idle:  # nothing sent: closed without an answer
        assert read_until_closed(sock) == b""
    for sock in socks + idle:
        sock.close()


def test_deadline_restarts_after_each_response(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"\r\n\r\nok"):  # the whole response: head and body "ok"
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        # keep-alive: uvicorn's own keep-alive timer restarts with every byte; the deadline does not
        answers = trickle([sock], b"GET / HTTP/1.1\r\n")
    assert next(iter(answers.values())).startswith(b"HTTP/1.1 408")


def test_pipelined_requests_are_all_answered(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3
            + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert read_until_closed(sock).count(b"HTTP/1.1 200") == 4


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("PATCH", "/v2/feed/img/blobs/uploads/abc", "BLOB_UPLOAD_INVALID"),
        ("PUT", "/v2/feed/img/manifests/v1", "MANIFEST_INVALID"),
        ("POST", "/form", "SIZE_INVALID"),
        ("POST", "/note", "SIZE_INVALID"),
    ],
)
def test_stalled_body_fails_and_closes(served: Served, method: str, path: str, code: str) -> None:
    with served.connect() as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += "Content-Length: 100\r\n\r\n"
        sock.sendall(head.encode() + b'{"text": "')  # 10 of 100 bytes, then silence
        answer = read_until_closed(sock)  # the server closes the connection after its answer
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400"), answer
    assert b"connection: close" in status.lower()
    error = json.loads(body)["errors"][0]
    assert error["code"] == code and f"nothing received for {BODY_IDLE:g} s" in error["message"]


def test_slow_body_with_short_gaps_completes(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"PATCH /v2/feed/img/blobs/uploads/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for _ in range(8):  # 8 x TRICKLE is longer than BODY_IDLE; each gap is shorter
            time.sleep(TRICKLE)
            sock.sendall(b"y")
        answer = b""
        sock.settimeout(BOUND)
        while not answer.endswith(b"\r\n\r\n8"):
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"8"), answer

"""A lean HTTP/1.1 registry client for the benchmark: keep-alive, bodies sent with ``sendfile``.

Python's ``http.client`` is used for requests and responses; large bodies go straight from the
file to the socket (``socket.sendfile``), so the client costs little CPU next to the servers.
Upload flows follow the OCI distribution spec v1.1, "Pushing blobs" (POST then PUT, or POST,
PATCH… and PUT); the same flows run against both registries.
"""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.auth import Tokens

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class HTTPFailure(RuntimeError):
    """An unexpected HTTP status (message: method, path, status and the start of the body)."""


@dataclass
class Registry:
    """One registry under test: ``name``, ``host`` (``127.0.0.1:PORT``) and its token source."""

    name: str
    host: str
    tokens: Tokens

    def connect(self, timeout: float = 600.0) -> http.client.HTTPConnection:
        """A new keep-alive connection (64 KiB blocks for bodies sent from memory)."""
        host, port = self.host.split(":")
        return http.client.HTTPConnection(host, int(port), timeout=timeout, blocksize=1 << 16)


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
    expect: tuple[int, ...] = (200, 201, 202, 204),
) -> http.client.HTTPResponse:
    """Send a request with a small (or no) body; return the read response.

    Raises:
        HTTPFailure: for a status not in ``expect``.
    """
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status not in expect:
        raise HTTPFailure(f"{method} {path} -> {response.status}: {data[:300]!r}")
    response.body = data  # type: ignore[attr-defined]
    return response


def _send_file_part(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    file: Path,
    offset: int,
    count: int,
) -> http.client.HTTPResponse:
    """Send ``count`` bytes of ``file`` from ``offset`` as the body, zero-copy."""
    conn.putrequest(method, path, skip_accept_encoding=True)
    for key, value in {**headers, "Content-Length": str(count)}.items():
        conn.putheader(key, value)
    conn.endheaders()
    with file.open("rb") as f:
        conn.sock.sendfile(f, offset, count)
    response = conn.getresponse()
    data = response.read()
    if response.status not in (201, 202, 204):
        raise HTTPFailure(f"{method} {path} -> {response.status}: {data[:300]!r}")
    return response


def _location(response: http.client.HTTPResponse) -> str:
    """The path + query of an upload ``Location`` (absolute or relative)."""
    parts = urlsplit(response.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_query(location: str, **params: str) -> str:
    return location + ("&" if "?" in location else "?") + urlencode(params)


def start_upload(reg: Registry, conn: http.client.HTTPConnection, repo: str) -> str:
    """POST a new upload session; return its location path."""
    r = request(conn, "POST", f"/v2/{repo}/blobs/uploads/", reg.tokens.repo(repo), expect=(202,))
    return _location(r)


def push_file(reg: Registry, repo: str, file: Path, digest: str, chunk: int | None = None) -> None:
    """Push ``file`` as blob ``digest``: monolithic (POST + PUT) or in ``chunk``-byte PATCHes."""
    size = file.stat().st_size
    conn = reg.connect()
    try:
        location = start_upload(reg, conn, repo)
        headers = {**reg.tokens.repo(repo), "Content-Type": "application/octet-stream"}
        if chunk is None:
            _send_file_part(conn, "PUT", _with_query(location, digest=digest), headers, file, 0, size)
            return
        for offset in range(0, size, chunk):
            count = min(chunk, size - offset)
            part = {**headers, "Content-Range": f"{offset}-{offset + count - 1}"}
            location = _location(_send_file_part(conn, "PATCH", location, part, file, offset, count))
        request(conn, "PUT", _with_query(location, digest=digest), headers, expect=(201,))
    finally:
        conn.close()


def push_stream(reg: Registry, repo: str, pieces: Iterable[bytes], size: int, digest: str) -> None:
    """Push a blob of ``size`` bytes produced by ``pieces`` (never held whole) with POST + PUT."""
    conn = reg.connect(timeout=1800)
    try:
        location = start_upload(reg, conn, repo)
        conn.putrequest("PUT", _with_query(location, digest=digest), skip_accept_encoding=True)
        for key, value in {
            **reg.tokens.repo(repo),
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }.items():
            conn.putheader(key, value)
        conn.endheaders()
        for piece in pieces:
            conn.sock.sendall(piece)
        response = conn.getresponse()
        data = response.read()
        if response.status != 201:
            raise HTTPFailure(f"PUT blob -> {response.status}: {data[:300]!r}")
    finally:
        conn.close()


def push_bytes(reg: Registry, conn: http.client.HTTPConnection, repo: str, data: bytes) -> str:
    """Push a small blob (POST + PUT); return its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = start_upload(reg, conn, repo)
    request(
        conn,
        "PUT",
        _with_query(location, digest=digest),
        {**reg.tokens.repo(repo), "Content-Type": "application/octet-stream"},
        data,
        expect=(201,),
    )
    return digest


def mount(
    reg: Registry,
    conn: http.client.HTTPConnection,
    repo: str,
    digest: str,
    source: str,
    headers: dict[str, str],
) -> None:
    """Cross-repository mount of ``digest`` from ``source`` (expects 201)."""
    query = urlencode({"mount": digest, "from": source})
    request(conn, "POST", f"/v2/{repo}/blobs/uploads/?{query}", headers, expect=(201,))


def put_manifest(
    reg: Registry,
    conn: http.client.HTTPConnection,
    repo: str,
    ref: str,
    data: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    """PUT an OCI image manifest under ``ref`` (tag or digest)."""
    hdrs = {**(headers if headers is not None else reg.tokens.repo(repo)), "Content-Type": MANIFEST}
    request(conn, "PUT", f"/v2/{repo}/manifests/{ref}", hdrs, data, expect=(201,))


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` (unless it already has that size); return its digest."""
    hasher = hashlib.sha256()
    if path.exists() and path.stat().st_size == size:
        with path.open("rb") as f:
            while block := f.read(1 << 22):
                hasher.update(block)
        return "sha256:" + hasher.hexdigest()
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 22))
            hasher.update(block)
            f.write(block)
            left -= len(block)
    return "sha256:" + hasher.hexdigest()

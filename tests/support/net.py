"""Small networking helpers for tests: free ports and waiting for an HTTP endpoint."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, ok: tuple[int, ...] = (200, 401)) -> None:
    """Poll ``url`` until it answers with a status in ``ok``.

    Raises:
        TimeoutError: when ``timeout`` seconds pass without such an answer.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code in ok:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last!r})")

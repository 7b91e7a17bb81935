"""Small networking helpers for tests: free ports and waiting for an HTTP endpoint."""

from __future__ import annotations

import socket
import threading
import time

import httpx

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago and not returned before.

    Linux may give the same ephemeral port to two ``bind(("127.0.0.1", 0))`` calls in a row once
    the first socket is closed, so two servers started one after the other could be handed one
    port; the second then fails to bind while the first answers in its place. Ports returned by
    this process are remembered and never returned again.

    Raises:
        RuntimeError: no new free port after 100 tries.
    """
    with _handed_out_lock:
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no new free TCP port on 127.0.0.1 after 100 tries")


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

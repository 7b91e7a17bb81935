"""Several real Berth server processes sharing one database, one stream and one blob store.

Berth runs as N replicas (docs/ARCHITECTURE.md, "Processes"), so every invariant is tested with
two real processes: ``berth serve all`` started twice on a fresh database, a fresh JetStream
stream and one storage folder, each on its own port. Tests address each process directly (no
proxy), so they decide which process serves which request.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from berth.token_auth import RegistryAuth
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER
from tests.support.databases import NATS_URL, delete_stream, temporary_database, unique
from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0  # seconds for each process to answer /v2/ (a deadline, not a measure)


@dataclass
class Server:
    """One ``berth serve all`` process."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """The last 6,000 characters of its output."""
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL the process group (a crash: no cleanup runs)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Cluster:
    """Processes sharing ``database_url``, ``stream`` and ``storage_root``."""

    servers: list[Server]
    database_url: str
    stream: str
    storage_root: Path
    env: dict[str, str]
    workdir: Path

    def client(self, i: int, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> httpx.AsyncClient:
        """An async client of server ``i`` logged in as ``user`` (Docker token flow)."""
        return httpx.AsyncClient(
            base_url=self.servers[i].url, auth=RegistryAuth(user, password), timeout=60.0
        )

    def start(self) -> Server:
        """Start one more process on the shared state and wait until it answers."""
        server = _start(self.env, self.workdir, len(self.servers))
        self.servers.append(server)
        _wait_ready(server)
        return server

    def logs(self) -> str:
        """Every process's log tail, for failure messages."""
        return "\n".join(f"--- {s.url} ---\n{s.log()}" for s in self.servers)


def _start(env: dict[str, str], workdir: Path, index: int) -> Server:
    port = free_port()
    log_path = workdir / f"server-{index}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["uv", "run", "berth", "serve", "all", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(f"http://127.0.0.1:{port}", proc, log_path)


def _wait_ready(server: Server) -> None:
    """Poll ``/v2/`` until it answers. Raises ``RuntimeError`` (with the log) otherwise."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"berth serve all exited with {server.proc.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/v2/", timeout=2.0).status_code in (200, 401):
                return
        time.sleep(0.2)
    raise RuntimeError(f"berth serve all not ready after {READY_TIMEOUT}s:\n{server.log()}")


def _stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(15)
    server.kill()


@contextlib.asynccontextmanager
async def cluster(workdir: Path, count: int = 2, **settings: str) -> AsyncIterator[Cluster]:
    """Start ``count`` processes of ``berth serve all`` on shared state; stop them at exit.

    ``settings`` are extra environment variables (``BERTH_UPLOADS__LEASE_SECONDS="1"`` …).

    Raises:
        RuntimeError: a process exited or was not ready in time (with its log).
    """
    stream = unique("BERTH_CLUSTER_")
    async with temporary_database() as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env.update(
            BERTH_DATABASE_URL=database_url, BERTH_NATS_URL=NATS_URL, BERTH_NATS_STREAM=stream,
            BERTH_STORAGE__ROOT=str(workdir / "storage"), BERTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
            BERTH_ACCESS_LOG="false", **settings,
        )  # fmt: skip
        group = Cluster([], database_url, stream, workdir / "storage", env, workdir)
        try:
            for i in range(count):  # one after the other: the first migrates, the rest wait
                group.servers.append(_start(env, workdir, i))
            for server in group.servers:
                _wait_ready(server)
            yield group
        finally:
            for server in group.servers:
                _stop(server)
            await delete_stream(stream)

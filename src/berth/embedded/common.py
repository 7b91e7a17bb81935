"""Process plumbing shared by embedded PostgreSQL and NATS: commands, children, users, folders."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psutil

_log = logging.getLogger("berth.embedded")

PG_SYSTEM_USER = "embedded_postgres"


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started or stopped (the message names the log to read)."""


def _identity(user: pwd.struct_passwd | None, cwd: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The environment (no ``PG*`` variables, C locale) and ``subprocess`` ids to run as ``user``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
    ids: dict[str, Any] = {}
    if user is not None:
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env["HOME"] = str(cwd)
    return env, ids


def run_command(
    args: list[str], *, user: pwd.struct_passwd | None, cwd: Path, timeout: float, stdin: str | None = None
) -> None:
    """Run a command to completion (as ``user`` when given).

    Output goes to a temporary file, not a pipe: a command that leaves a daemon behind must not
    hold our pipe open. Raises ``EmbeddedServiceError`` on a non-zero exit or after ``timeout`` s.
    """
    env, ids = _identity(user, cwd)
    with tempfile.TemporaryFile("w+") as out:
        try:
            # A session of its own: the terminal's Ctrl-C goes to berth, which stops the
            # services after the app has shut down, instead of reaching them first.
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


def spawn(
    args: list[str], *, user: pwd.struct_passwd | None, cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start a long-running child (as ``user``) in a session of its own, output appended to ``log``."""
    env, ids = _identity(user, cwd)
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            **ids,
        )


def describe_exit(code: int | None) -> str:
    """``"code 1"``, ``"signal SIGKILL"`` (Popen's negative codes) or ``"unknown code"``."""
    if code is None:
        return "unknown code"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def processes(name: str, needle: Path) -> list[psutil.Process]:
    """Live (not zombie) processes called ``name`` with ``needle`` as one of their arguments."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        alive = proc.info["status"] != psutil.STATUS_ZOMBIE
        if alive and proc.info["name"] == name and str(needle) in cmdline:
            found.append(proc)
    return found


def end(procs: list[psutil.Process], first: signal.Signals, grace: float) -> None:
    """Send ``first`` to ``procs``, then SIGKILL whatever still runs after ``grace`` seconds."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(first)
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        _log.warning("killing pid %s, still running %.0fs after %s", proc.pid, grace, first.name)
        proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def system_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as: ``embedded_postgres`` when we are root (created if missing)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_SYSTEM_USER)
    _log.info("creating system user %s to run PostgreSQL", PG_SYSTEM_USER)
    useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER]
    subprocess.run(useradd, check=True, capture_output=True)
    return pwd.getpwnam(PG_SYSTEM_USER)


def make_traversable(path: Path) -> None:
    """Add ``o+x`` to ``path`` and its parents so another user can reach what lies below."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            _log.info("chmod o+x %s so %s can traverse it", folder, PG_SYSTEM_USER)
            folder.chmod(mode | stat.S_IXOTH)


def own(path: Path, user: pwd.struct_passwd | None, mode: int) -> None:
    """Make ``path`` (recursively, if its owner is wrong) belong to ``user`` with ``mode``."""
    if user is not None and path.stat().st_uid != user.pw_uid:
        for root, dirs, files in os.walk(path):
            for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                os.chown(name, user.pw_uid, user.pw_gid, follow_symlinks=False)
    path.chmod(mode)


def stop_child(proc: subprocess.Popen[bytes], first: signal.Signals, grace: float, what: str) -> None:
    """Send ``first`` to our child ``proc``; SIGKILL it after ``grace`` s; reap it either way."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(first)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _log.warning("%s ignored %s for %.0fs; killing it", what, first.name, grace)
        proc.kill()
        proc.wait()

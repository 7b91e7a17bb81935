"""Private Docker engine and containerd daemons for end-to-end tests (push, pull, login only).

Each daemon keeps all its state in one fresh short folder under /tmp (unix socket paths must stay
under 108 bytes), listens on its own socket, is stopped by PID (SIGTERM, then SIGKILL) and must
leave no process or mount behind. Flags and configuration follow ``shared/CLIENTS.md``, "The
Docker engine and containerd": no iptables, no bridge, the ``vfs`` storage driver, CRI disabled.
127.0.0.0/8 is an insecure registry for dockerd by default (HTTP allowed); ``ctr`` needs
``--plain-http``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT = 30.0  # seconds until a daemon must answer on its socket
STOP_TIMEOUT = 20.0  # seconds between SIGTERM and SIGKILL
CLIENT_TIMEOUT = 180.0  # seconds for one docker/ctr command
DOCKERD_FLAGS = (
    "--iptables=false",
    "--ip6tables=false",
    "--ip-masq=false",
    "--bridge=none",
    "--storage-driver=vfs",
)
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")
CONTAINERD_CONFIG = """version = 2
root = "{w}/root"
state = "{w}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{w}/containerd.sock"
[ttrpc]
  address = "{w}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{w}/opt"
"""


def docker_cli() -> str:
    """The docker CLI to drive: ``$BERTH_E2E_DOCKER``, else Debian ``docker.io``'s, else PATH's.

    The packaged CLI (20.10) matches the packaged engine; a newer CLI on PATH can be chosen
    with ``BERTH_E2E_DOCKER=/usr/local/bin/docker``.
    """
    chosen = os.environ.get("BERTH_E2E_DOCKER")
    if chosen:
        return chosen
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return shutil.which("docker") or "docker"


def have_daemons() -> str | None:
    """``None`` when dockerd, containerd, ctr and docker are installed, else what is missing."""
    missing = [b for b in ("dockerd", "containerd", "ctr") if shutil.which(b) is None]
    if shutil.which(docker_cli()) is None:
        missing.append("docker")
    return f"not installed: {', '.join(missing)} (scripts/test installs docker.io)" if missing else None


def run_client(
    cmd: Sequence[str],
    env: dict[str, str],
    *,
    check: bool = True,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client command with ``env`` and capture text output.

    Raises:
        AssertionError: if ``check`` and it exits non-zero, or it runs over CLIENT_TIMEOUT s; the
            message holds the command line, exit code, stdout and stderr.
    """
    try:
        proc = subprocess.run(
            list(cmd),
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"timed out after {CLIENT_TIMEOUT}s: {' '.join(cmd)}") from exc
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command: {' '.join(cmd)}\nexit code: {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


@dataclass
class Daemon:
    """A daemon process started here: its folder, socket and log."""

    root: Path
    socket: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    def program(self) -> str:
        """The daemon's program (its command line's first word)."""
        args = self.proc.args
        return str(args[0] if isinstance(args, list | tuple) else args)

    def log(self) -> str:
        """The daemon's log so far (last 8,000 characters)."""
        return self.log_path.read_text(errors="replace")[-8_000:]


@dataclass
class DockerDaemon(Daemon):
    """A private dockerd; :meth:`docker` runs the CLI against it with its own ``DOCKER_CONFIG``."""

    cli: str = "docker"

    @property
    def env(self) -> dict[str, str]:
        """Our environment plus DOCKER_HOST, DOCKER_CONFIG (credentials) and DOCKER_BUILDKIT=0."""
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.root / "config"),
            "DOCKER_BUILDKIT": "0",
        }

    def docker(
        self, *args: str, check: bool = True, stdin: str | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker ARGS`` against this daemon (see :func:`run_client`)."""
        return run_client([self.cli, *args], self.env, check=check, stdin=stdin, cwd=cwd)

    def clean(self) -> None:
        """Remove every image (and its layers) from this daemon, so the next pull is from zero.

        Raises:
            AssertionError: if images remain.
        """
        ids = self.docker("image", "ls", "-q").stdout.split()
        if ids:  # removing the tagged images removes their untagged parents
            self.docker("image", "rm", "-f", *sorted(set(ids)), check=False)
        assert self.docker("image", "ls", "-aq").stdout.strip() == "", self.docker("image", "ls", "-a").stdout

    def build(self, context: Path, tag: str, *, platform: str | None = None) -> str:
        """``DOCKER_BUILDKIT=0 docker build -t TAG [--platform P] CONTEXT``; returns the image id."""
        extra = ["--platform", platform] if platform else []
        self.docker("build", "-q", "-t", tag, *extra, str(context))
        return self.image(tag, "{{.Id}}")

    def push(self, ref: str) -> str:
        """``docker push REF``; returns the manifest digest the CLI printed (``sha256:...``).

        Raises:
            AssertionError: if the push fails or prints no digest.
        """
        out = self.docker("push", ref).stdout
        match = PUSHED_DIGEST.search(out)
        assert match, f"no digest in docker push output:\n{out}"
        return match[1]

    def image(self, ref: str, template: str) -> str:
        """``docker image inspect -f TEMPLATE REF``, stripped."""
        return self.docker("image", "inspect", "-f", template, ref).stdout.strip()

    def login(
        self, host: str, user: str, password: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker login -u USER --password-stdin HOST`` (the password on stdin)."""
        return self.docker("login", "-u", user, "--password-stdin", host, stdin=password, check=check)

    def credentials(self, host: str) -> dict[str, str]:
        """What ``docker login`` stored for ``host`` in ``config.json`` (``auth``, ``identitytoken``)."""
        path = self.root / "config" / "config.json"
        auths = json.loads(path.read_text()).get("auths", {}) if path.exists() else {}
        return dict(auths.get(host, {}))


@dataclass
class Containerd(Daemon):
    """A private containerd; :meth:`ctr` runs ``ctr --address SOCKET`` in namespace ``e2e``."""

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ctr --address SOCKET --namespace e2e ARGS`` (see :func:`run_client`)."""
        cmd = ["ctr", "--address", str(self.socket), "--namespace", "e2e", *args]
        return run_client(cmd, dict(os.environ), check=check)


def _processes_under(root: Path) -> list[int]:
    """PIDs of live processes whose command line mentions ``root`` (daemons and their children)."""
    needle = str(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _mounts_under(root: Path) -> list[str]:
    """Mount points below ``root`` that are still mounted."""
    lines = Path("/proc/self/mounts").read_text().splitlines()
    return [p.split()[1] for p in lines if p.split()[1].startswith(f"{root}/")]


def _wait_ready(daemon: Daemon, probe: Sequence[str] | None) -> None:
    """Poll until the daemon answers: ``GET /_ping`` on its socket, or ``probe`` exits 0.

    Raises:
        RuntimeError: if the process exits first or READY_TIMEOUT s pass; carries the log.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"{daemon.program()} exited {daemon.proc.returncode}:\n{daemon.log()}")
        if daemon.socket.exists() and _answers(daemon.socket, probe):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{daemon.program()} not ready after {READY_TIMEOUT}s:\n{daemon.log()}")


def _answers(socket: Path, probe: Sequence[str] | None) -> bool:
    """Whether the daemon on ``socket`` answers (dockerd's ``/_ping`` or ``probe``'s exit code)."""
    if probe is not None:
        return subprocess.run(list(probe), capture_output=True, check=False, timeout=10).returncode == 0
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), timeout=2.0) as client:
            return client.get("http://docker/_ping").status_code == 200
    except httpx.HTTPError:
        return False


def _stop(daemon: Daemon) -> None:
    """SIGTERM the daemon by PID, SIGKILL after STOP_TIMEOUT s; then check nothing is left.

    Raises:
        AssertionError: if it needed SIGKILL, or processes or mounts under its folder remain
            (they are killed/unmounted anyway so the next test starts clean).
    """
    problems = []
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait(10)
            problems.append(f"{daemon.program()} ignored SIGTERM for {STOP_TIMEOUT}s")
    deadline = time.monotonic() + STOP_TIMEOUT  # children (dockerd's containerd) exit after it
    while (left := _processes_under(daemon.root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        problems.append(f"process {pid} left behind")
    for mount in reversed(_mounts_under(daemon.root)):
        subprocess.run(["umount", "-l", mount], check=False)
        problems.append(f"mount {mount} left behind")
    if problems:
        raise AssertionError("; ".join(problems) + f"\nlog:\n{daemon.log()}")


def _start(cmd: Sequence[str], root: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session with stdout/stderr to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
        )


@contextlib.contextmanager
def _running(daemon: Daemon, probe: Sequence[str] | None) -> Iterator[None]:
    """Wait until ``daemon`` is ready, yield, then stop it and remove its folder."""
    try:
        _wait_ready(daemon, probe)
        yield
    except BaseException:
        with contextlib.suppress(AssertionError):  # keep the first error
            _stop(daemon)
        shutil.rmtree(daemon.root, ignore_errors=True)
        raise
    _stop(daemon)
    shutil.rmtree(daemon.root, ignore_errors=True)


@contextlib.contextmanager
def docker_daemon(prefix: str = "dk", config: dict[str, object] | None = None) -> Iterator[DockerDaemon]:
    """Start a private dockerd under ``/tmp/<prefix>XXXX`` and yield it once ``/_ping`` answers.
    ``config`` is its ``daemon.json`` (e.g. ``{"registry-mirrors": [...]}``; default ``{}``).

    Raises:
        RuntimeError: if dockerd exits or is not ready within READY_TIMEOUT s (with its log).
        AssertionError: on exit, if it did not stop on SIGTERM or left processes/mounts behind.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    (root / "daemon.json").write_text(json.dumps(config or {}))
    (root / "config").mkdir()
    socket = root / "docker.sock"
    cmd = [
        "dockerd",
        "--config-file",
        f"{root}/daemon.json",
        "--data-root",
        f"{root}/data",
        "--exec-root",
        f"{root}/exec",
        "--pidfile",
        f"{root}/dockerd.pid",
        "-H",
        f"unix://{socket}",
        *DOCKERD_FLAGS,
    ]
    daemon = DockerDaemon(
        root, socket, root / "dockerd.log", _start(cmd, root, root / "dockerd.log"), cli=docker_cli()
    )
    with _running(daemon, None):
        yield daemon


@contextlib.contextmanager
def containerd_daemon(prefix: str = "ct") -> Iterator[Containerd]:
    """Start a private containerd (CRI disabled) under ``/tmp/<prefix>XXXX``; yield it when ready.

    Raises:
        RuntimeError: if containerd exits or is not ready within READY_TIMEOUT s (with its log).
        AssertionError: on exit, if it did not stop on SIGTERM or left processes/mounts behind.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    config = root / "config.toml"
    config.write_text(CONTAINERD_CONFIG.format(w=root))
    socket = root / "containerd.sock"
    log_path = root / "containerd.log"
    daemon = Containerd(
        root, socket, log_path, _start(["containerd", "--config", str(config)], root, log_path)
    )
    with _running(daemon, ["ctr", "--address", str(socket), "version"]):
        yield daemon


def scratch_context(directory: Path, files: dict[str, Path], entrypoint: Sequence[str] = ()) -> Path:
    """Write a ``FROM scratch`` + ``COPY`` build context: ``files`` maps image path -> real path.

    Files and folders are copied into ``directory`` (created), one ``COPY`` per entry, in order.

    Returns:
        ``directory``, ready for :meth:`DockerDaemon.build`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["FROM scratch"]
    for n, (target, source) in enumerate(files.items()):
        local = directory / f"f{n}"
        if source.is_dir():
            shutil.copytree(source, local)
        else:
            shutil.copy2(source, local)
        lines.append(f"COPY f{n} {target}")
    if entrypoint:
        lines.append(f"ENTRYPOINT {json.dumps(list(entrypoint))}")
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
    return directory

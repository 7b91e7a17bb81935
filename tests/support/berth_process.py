"""Run ``berth up`` (the all-in-one server) as a subprocess for end-to-end tests.

The server contract (docs/DESIGN.md §1): started as ``uv run berth up --host
127.0.0.1 --port P --data-dir DIR`` from the repository root; ``BERTH_DATABASE_URL``,
``BERTH_NATS_URL`` and ``BERTH_NATS_STREAM`` select existing services (unset = embedded ones);
ready when ``GET /v2/`` answers (200, or 401 with the token challenge);
``BERTH_ADMIN_PASSWORD`` is ``ADMIN_PASSWORD``; stopped with SIGTERM; feeds created with ``POST /api/feeds``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from berth.token_auth import RegistryAuth
from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0  # seconds until /v2/ must answer 200
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL
BERTH_COMMAND: tuple[str, ...] = ("uv", "run", "berth", "up")  # run from REPO_ROOT
ENV_KEYS = ("BERTH_DATABASE_URL", "BERTH_NATS_URL", "BERTH_NATS_STREAM")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "berth-e2e-admin"  # BERTH_ADMIN_PASSWORD of every server started here


@dataclass
class BerthProcess:
    """A running ``berth up``: where it listens and where its log goes."""

    host: str  # "127.0.0.1:PORT"
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    tls: bool = False  # started with ``--tls``: HTTPS, CA at ``ca_file``

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (``https://`` with TLS)."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate ``berth up --tls`` made (``DATA_DIR/tls/ca.crt``)."""
        return self.data_dir / "tls" / "ca.crt"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify=``: an SSL context trusting ``ca_file`` with TLS, else ``True``.

        Raises:
            FileNotFoundError: with TLS, before the server has written its CA.
        """
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else True

    def log(self) -> str:
        """The server's combined stdout/stderr so far (last 20,000 characters)."""
        return self.log_path.read_text(errors="replace")[-20_000:]

    def create_feed(self, name: str) -> None:
        """Create feed ``name`` with ``POST /api/feeds``.

        Raises:
            AssertionError: unless the server answers 201 Created.
        """
        r = httpx.post(
            f"{self.url}/api/feeds",
            json={"name": name},
            timeout=30.0,
            verify=self.verify,
            auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
        )
        if r.status_code != 201:
            raise AssertionError(f"POST /api/feeds {name!r} -> {r.status_code}: {r.text[:2000]}")


def registry_credentials(host: str, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> None:
    """Let skopeo and podman run by this process log in to ``host`` (``REGISTRY_AUTH_FILE``)."""
    path = Path(
        os.environ.setdefault(
            "REGISTRY_AUTH_FILE", str(Path(tempfile.gettempdir()) / f"berth-auth-{os.getpid()}.json")
        )
    )
    auths = json.loads(path.read_text()).get("auths", {}) if path.exists() else {}
    auths[host] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    path.write_text(json.dumps({"auths": auths}))


def _environment(
    database_url: str | None, nats_url: str | None, stream: str | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The process environment: ours, minus inherited BERTH_* service settings, plus the given
    (``extra`` last)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS} | (extra or {})
    env["BERTH_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    for key, value in zip(ENV_KEYS, (database_url, nats_url, stream), strict=True):
        if value is not None:
            env[key] = value
    return env


def _wait_ready(server: BerthProcess, timeout: float) -> None:
    """Poll ``/v2/`` until 200.

    Raises:
        RuntimeError: if the process exits first or ``timeout`` s pass; carries the log.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"berth up exited with {server.proc.returncode}; log:\n{server.log()}")
        try:
            r = httpx.get(f"{server.url}/v2/", timeout=2.0, verify=server.verify)
            if r.status_code in (200, 401):  # 401: the token challenge, as docker login expects
                return
            last = r.status_code
        except (httpx.HTTPError, OSError) as exc:  # OSError: the TLS CA not written yet
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"berth up not ready after {timeout}s (last: {last!r}); log:\n{server.log()}")


def _stop(server: BerthProcess) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT s, then SIGKILL the whole process group.

    Raises:
        AssertionError: if SIGTERM did not stop the server in time (it is killed anyway).
    """
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise AssertionError(
                f"berth up did not exit within {STOP_TIMEOUT}s of SIGTERM; log:\n{server.log()}"
            ) from None
    with contextlib.suppress(ProcessLookupError):  # children the server left behind
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def berth_process(
    workdir: Path,
    *,
    database_url: str | None,
    nats_url: str | None,
    stream: str | None,
    port: int | None = None,
    data_dir: Path | None = None,
    tls: bool = False,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[BerthProcess]:
    """Start ``uv run berth up`` on 127.0.0.1 and yield it once ``/v2/`` answers 200.

    ``database_url``/``nats_url``/``stream`` set BERTH_DATABASE_URL/BERTH_NATS_URL/
    BERTH_NATS_STREAM; ``None`` leaves the variable unset (Berth then embeds its own service).
    The data directory is ``data_dir`` or ``workdir/berth-data``; the log is
    ``workdir/berth-PORT.log``. ``tls=True`` adds ``--tls`` (HTTPS; readiness trusts its CA);
    ``extra_args`` are further ``berth up`` options; ``env`` further environment variables
    (e.g. ``BERTH_CONFIG``, store credentials).

    Raises:
        RuntimeError: if the server exits or is not ready within 60 s (message holds its log).
        AssertionError: on exit, if the server does not stop within 15 s of SIGTERM.
    """
    port = port or free_port()
    data = data_dir or workdir / "berth-data"
    data.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"berth-{port}.log"
    cmd = [*BERTH_COMMAND, "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    cmd += ["--tls"] if tls else []
    cmd += list(extra_args)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=_environment(database_url, nats_url, stream, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = BerthProcess(f"127.0.0.1:{port}", data, log_path, proc, tls=tls)
    registry_credentials(server.host)
    try:
        _wait_ready(server, READY_TIMEOUT)
        yield server
    except BaseException:
        with contextlib.suppress(AssertionError):  # keep the first error, not the shutdown one
            _stop(server)
        raise
    _stop(server)

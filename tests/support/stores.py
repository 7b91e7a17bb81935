"""The real servers behind the tests: S3 and Azure Blob stores (and, with containers, PostgreSQL
and NATS). ONE place decides how they run, and says which it chose (the pytest header):

- ``containers``: where a Docker engine answers, testcontainers starts MinIO, Azurite,
  PostgreSQL and NATS (developers' laptops, CI machines with Docker).
- ``processes``: otherwise (machines without a container engine, like the project's
  development and CI machines), a ``moto`` S3 server and Microsoft's Azurite run as local
  processes on free loopback ports; PostgreSQL and NATS are the machine's services
  (``BERTH_TEST_PG``, ``BERTH_TEST_NATS``; see ``tests/support/databases.py``).

``BERTH_TEST_STORES=containers|processes`` overrides the choice. Known limits of the emulators
(docs/ARCHITECTURE.md, "Storage"): moto does not check signatures (presigned S3 URLs are checked
by inspection) and reports every multipart upload as started on 2010-11-10; Azurite checks SAS
signatures but lacks Put Blob From URL. Azurite comes from ``tools/azurite`` (``npm ci``, run by
``scripts/test``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.support.net import free_port, wait_http

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE = REPO_ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
READY_TIMEOUT = 60.0
Mode = Literal["containers", "processes"]


@dataclass(frozen=True)
class Decision:
    """How the stores run, and why."""

    mode: Mode
    reason: str

    def describe(self) -> str:
        """One line for the pytest header."""
        what = (
            "MinIO, Azurite, PostgreSQL and NATS in containers (testcontainers)"
            if self.mode == "containers"
            else "moto S3 server and Azurite as local processes; the machine's PostgreSQL and NATS"
        )
        return f"stores: {self.mode}: {what} ({self.reason})"


@functools.cache
def decide() -> Decision:
    """``containers`` when a Docker engine answers a ping (or ``BERTH_TEST_STORES`` says so)."""
    forced = os.environ.get("BERTH_TEST_STORES", "").strip().lower()
    if forced in ("containers", "processes"):
        return Decision(forced, "BERTH_TEST_STORES")  # type: ignore[arg-type]
    if forced:
        raise ValueError(f"BERTH_TEST_STORES must be 'containers' or 'processes', not {forced!r}")
    failure = _docker_failure()
    if failure is not None:
        return Decision("processes", f"no Docker engine: {failure}")
    return Decision("containers", "a Docker engine answers")


def _docker_failure() -> str | None:
    """Why no Docker engine answers a ping (the exception's class name), or None if one does.

    docker-py leaves the socket of a connection that failed unclosed; it is collected here,
    with its ``ResourceWarning`` ignored, so that it does not surface later inside some test
    (where ``filterwarnings = error`` would fail it).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=3)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            failure: str | None = type(exc).__name__
        else:
            failure = None
        gc.collect()
    return failure


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint for tests. ``kind`` is ``moto`` or ``minio``."""

    endpoint: str  # http://host:port
    access_key: str
    secret_key: str
    kind: str
    region: str = "us-east-1"

    def options(self, bucket: str, prefix: str = "", **extra: Any) -> dict[str, Any]:
        """``create_driver("s3", **options)`` for ``bucket``/``prefix`` on this server."""
        base = {"bucket": bucket, "prefix": prefix, "endpoint": self.endpoint, "region": self.region}
        return {**base, "access_key": self.access_key, "secret_key": self.secret_key, **extra}

    def minio(self) -> Any:
        """A raw ``minio.Minio`` client (for fixtures: buckets, raw keys)."""
        from minio import Minio

        host = self.endpoint.split("://", 1)[1]
        return Minio(host, self.access_key, self.secret_key, secure=False, region=self.region)

    def new_bucket(self) -> str:
        """Create and return a fresh bucket."""
        name = f"t{secrets.token_hex(6)}"
        self.minio().make_bucket(name)
        return name


@dataclass(frozen=True)
class AzureServer:
    """An Azure Blob endpoint for tests (Azurite). ``endpoint`` is the account URL."""

    endpoint: str  # http://host:port/devstoreaccount1
    account_name: str
    account_key: str
    kind: str
    _containers: list[str] = field(default_factory=list, compare=False)

    def options(self, container: str, prefix: str = "", **extra: Any) -> dict[str, Any]:
        """``create_driver("azure", **options)`` for ``container``/``prefix`` on this server."""
        return {
            "account_name": self.account_name,
            "account_key": self.account_key,
            "container": container,
            "prefix": prefix,
            "endpoint": self.endpoint,
            **extra,
        }

    def service(self) -> Any:
        """A raw async ``BlobServiceClient`` (the caller closes it)."""
        from azure.storage.blob.aio import BlobServiceClient

        credential = {"account_name": self.account_name, "account_key": self.account_key}
        return BlobServiceClient(self.endpoint, credential=credential)

    async def new_container(self) -> str:
        """Create and return a fresh container."""
        name = f"t{secrets.token_hex(6)}"
        async with self.service() as service:
            await service.create_container(name)
        return name


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start the S3 server chosen by ``decide()`` for the duration of the block."""
    if decide().mode == "containers":
        from testcontainers.minio import MinioContainer

        with MinioContainer() as minio:
            config = minio.get_config()
            yield S3Server(
                f"http://{config['endpoint']}", config["access_key"], config["secret_key"], "minio"
            )
        return
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _process(command, "moto"):
        wait_http(f"http://127.0.0.1:{port}/", timeout=READY_TIMEOUT, ok=(200,))
        yield S3Server(f"http://127.0.0.1:{port}", "berth-test", "berth-test-secret", "moto")


@contextlib.contextmanager
def azure_server() -> Iterator[AzureServer]:
    """Start Azurite (a container or a process, as ``decide()`` says) for the block."""
    if decide().mode == "containers":
        from testcontainers.azurite import AzuriteContainer

        container = AzuriteContainer().with_command(
            "azurite-blob --blobHost 0.0.0.0 --skipApiVersionCheck --loose --disableTelemetry"
        )
        with container as azurite:
            port = azurite.get_exposed_port(azurite.blob_service_port)
            host = azurite.get_container_host_ip()
            yield AzureServer(
                f"http://{host}:{port}/{AZURITE_ACCOUNT}", AZURITE_ACCOUNT, AZURITE_KEY, "azurite"
            )
        return
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run `npm ci` in tools/azurite (scripts/test does)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="berth-azurite-") as location:
        command = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", location,
                   "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"]  # fmt: skip
        with _process(command, "azurite"):
            _wait_port(port)
            yield AzureServer(
                f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", AZURITE_ACCOUNT, AZURITE_KEY, "azurite"
            )


@contextlib.contextmanager
def database_services() -> Iterator[dict[str, str]]:
    """With containers: start PostgreSQL and NATS (JetStream) and yield the ``BERTH_TEST_PG`` /
    ``BERTH_TEST_NATS`` values to export; with processes: yield nothing (the machine's own)."""
    if decide().mode != "containers" or os.environ.get("BERTH_TEST_PG"):
        yield {}
        return
    from testcontainers.nats import NatsContainer
    from testcontainers.postgres import PostgresContainer

    pg_container = PostgresContainer(
        "postgres:16", username="postgres", password="postgres", dbname="postgres", driver=None
    )
    with pg_container as pg, NatsContainer("nats:2.10", jetstream=True) as nats:
        yield {"BERTH_TEST_PG": pg.get_connection_url(), "BERTH_TEST_NATS": nats.nats_uri()}


@contextlib.contextmanager
def _process(command: list[str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group; stop it by PID (SIGTERM, then SIGKILL)."""
    log = tempfile.NamedTemporaryFile(prefix=f"berth-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    except BaseException as exc:
        exc.add_note(f"{name} log:\n{Path(log.name).read_text(errors='replace')[-4000:]}")
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {READY_TIMEOUT}s")

"""Start the registries under test on loopback: Berth (production settings) and Distribution 2.8.

Berth runs as ``berth serve all --workers N`` (N = CPU cores) against the machine's PostgreSQL
and NATS, in a fresh database and a fresh JetStream stream, with filesystem storage (or, with
``s3=``, its default store in an S3 bucket); a feed ``bench`` is created and Anonymous is
granted Add (push) on it, so clients use anonymous bearer tokens (``bench.auth``). Distribution
runs without auth with filesystem storage (or its ``s3`` driver on the same S3 server, another
bucket). On S3 both stream blobs through the registry (Berth ``redirect: false``, Distribution
``redirect: disable: true``), so a pull measures the registry, not the S3 server alone. Both log
only errors; both have their access log off. Also nginx (``sendfile on``) as the loopback ceiling
for blob transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import nats

from berth.token_auth import RegistryAuth
from tests.support.databases import NATS_URL, delete_stream, temporary_database, unique
from tests.support.net import free_port, wait_http

REPO_ROOT = Path(__file__).resolve().parents[1]
BERTH_EXE = Path(sys.executable).parent / "berth"
ADMIN_PASSWORD = "bench-admin"
FEED = "bench"


@dataclass
class Server:
    """A running server: ``name``, ``host`` (``127.0.0.1:PORT``), its process and storage root."""

    name: str
    host: str
    proc: subprocess.Popen[bytes]
    storage: Path
    settle: Callable[[], float] = field(default=lambda: 0.0)  # wait out background work; seconds

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def pids(self) -> list[int]:
        """The server's process and all its descendants (uvicorn supervisor + workers)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    text = (task / "children").read_text().split()
                    todo.extend(int(c) for c in text)
        return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclass(frozen=True)
class S3Bucket:
    """A bucket on an S3 server for one registry: ``endpoint`` is ``http://host:port``."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _distribution_storage(root: Path, s3: S3Bucket | None) -> str:
    """The ``storage:`` section of Distribution's configuration: the filesystem under ``root``,
    or its S3 driver (aws-sdk-go; ``regionendpoint`` makes it use path-style requests to that
    server) with redirects off, so blobs stream through the registry as they do through Berth."""
    if s3 is None:
        return f"storage:\n  filesystem: {{rootdirectory: {root}}}\n  delete: {{enabled: true}}\n"
    return (
        "storage:\n  s3:\n"
        f"    accesskey: {s3.access_key}\n    secretkey: {s3.secret_key}\n"
        f"    region: {s3.region}\n    regionendpoint: {s3.endpoint}\n"
        f"    bucket: {s3.bucket}\n    secure: false\n    v4auth: true\n"
        "  delete: {enabled: true}\n  redirect: {disable: true}\n"
    )


@contextlib.contextmanager
def distribution(workdir: Path, s3: S3Bucket | None = None) -> Iterator[Server]:
    """``docker-registry serve`` on a free loopback port, filesystem storage in ``workdir`` (or
    the S3 bucket ``s3``)."""
    exe = shutil.which("docker-registry")
    if exe is None:
        raise FileNotFoundError("docker-registry is not installed (apt-get install docker-registry)")
    port, root = free_port(), workdir / "distribution-storage"
    root.mkdir(parents=True, exist_ok=True)
    config = workdir / "distribution.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
        f"http: {{addr: 127.0.0.1:{port}, secret: bench-secret}}\n" + _distribution_storage(root, s3)
    )
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    with (workdir / "distribution.log").open("wb") as log:
        proc = subprocess.Popen(
            [exe, "serve", str(config)], stdout=log, stderr=log, env=env, start_new_session=True
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/")
        yield Server("distribution", f"127.0.0.1:{port}", proc, root)
    finally:
        _stop(proc)


def _berth_env(database_url: str, stream: str, storage: Path, s3: S3Bucket | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    if s3 is not None:  # the default store (feed bench's) in the bucket, streamed through Berth
        env.update(
            BERTH_STORAGE__KIND="s3", BERTH_STORAGE__BUCKET=s3.bucket, BERTH_STORAGE__ENDPOINT=s3.endpoint,
            BERTH_STORAGE__REGION=s3.region, BERTH_STORAGE__REDIRECT="false",
            BERTH_STORAGE__ACCESS_KEY_ENV="BENCH_S3_ACCESS_KEY", BENCH_S3_ACCESS_KEY=s3.access_key,
            BERTH_STORAGE__SECRET_KEY_ENV="BENCH_S3_SECRET_KEY", BENCH_S3_SECRET_KEY=s3.secret_key,
        )  # fmt: skip
    env.update(
        BERTH_DATABASE_URL=database_url,
        BERTH_NATS_URL=NATS_URL,
        BERTH_NATS_STREAM=stream,
        BERTH_NATS_SUBJECT_PREFIX=stream.lower(),
        BERTH_STORAGE__ROOT=str(storage),
        BERTH_DATA_DIR=str(storage.parent),
        BERTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        BERTH_LOG_LEVEL="WARNING",
        # Parity with Distribution (accesslog disabled). Also needed because uvicorn's
        # spawned workers do not inherit the CLI's logging setup, so BERTH_LOG_LEVEL does
        # not silence the info-level access line there.
        BERTH_ACCESS_LOG="false",
    )
    return env


def _prepare_feed(url: str) -> None:
    """Create feed ``bench`` and grant Anonymous ``add`` (push, which implies pull) on it."""
    auth = RegistryAuth("admin", ADMIN_PASSWORD)
    r = httpx.post(f"{url}/api/feeds", json={"name": FEED, "public": True}, auth=auth, timeout=30)
    r.raise_for_status()
    subprocess.run(
        [
            str(BERTH_EXE),
            "grant",
            "anonymous",
            "add",
            "--feed",
            FEED,
            "--url",
            url,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=REPO_ROOT,
        env={**os.environ, "BERTH_AUTH__ADMIN_USER": "admin", "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )


@contextlib.contextmanager
def berth(workdir: Path, workers: int, s3: S3Bucket | None = None) -> Iterator[Server]:
    """``berth serve all --workers N`` on a fresh database, stream and storage folder (or the
    S3 bucket ``s3`` as its default store)."""
    stream = unique("BERTH_BENCH_")
    loop = asyncio.new_event_loop()
    db_cm = temporary_database("berth_bench_")
    dsn = loop.run_until_complete(db_cm.__aenter__())
    storage = workdir / "berth-storage"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        str(BERTH_EXE),
        "serve",
        "all",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc: subprocess.Popen[bytes] | None = None
    try:  # from here on the database and the stream are removed whatever happens
        with (workdir / "berth.log").open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=_berth_env(dsn, stream, storage, s3),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_http(f"http://127.0.0.1:{port}/v2/", timeout=90)
        _prepare_feed(f"http://127.0.0.1:{port}")
        yield Server(
            "berth",
            f"127.0.0.1:{port}",
            proc,
            storage,
            settle=lambda: loop.run_until_complete(_quiescent(dsn, stream)),
        )
    finally:
        if proc is not None:
            _stop(proc)
        loop.run_until_complete(db_cm.__aexit__(None, None, None))
        loop.run_until_complete(delete_stream(stream))
        loop.close()


async def _quiescent(dsn: str, stream: str, limit: float = 300.0) -> float:
    """Wait until Berth's background work has caught up; return the seconds waited.

    Caught up: the outbox relay's saved checkpoint has reached the last event (it saves when
    idle) and every durable consumer of ``stream`` has nothing pending or unacknowledged. A
    burst (the manifest PUT case appends ~30k events) leaves seconds of relay and consumer
    work behind; each case starts after it, so it measures its own requests only.
    """
    started = time.monotonic()
    conn = await asyncpg.connect(dsn)
    bus = await nats.connect(NATS_URL)
    try:
        js = bus.jetstream()
        while time.monotonic() - started < limit:
            last = await conn.fetchval("SELECT coalesce(max(position), 0) FROM eventstore.events")
            relayed = await conn.fetchval(
                "SELECT coalesce(max(position), 0) FROM eventstore.checkpoints WHERE name = 'relay'"
            )
            consumers = await js.consumers_info(stream)
            if relayed >= last and all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise TimeoutError(f"Berth's background work did not settle in {limit:.0f} s")
    finally:
        await bus.close()
        await conn.close()


@contextlib.contextmanager
def nginx(workdir: Path, root: Path) -> Iterator[str]:
    """nginx serving ``root`` with sendfile (the loopback ceiling); yields ``127.0.0.1:PORT``."""
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"daemon off; pid {workdir}/nginx.pid; error_log {workdir}/nginx-error.log;\n"
        "worker_processes auto; events {}\n"
        f"http {{ access_log off; sendfile on; tcp_nopush on; client_body_temp_path {workdir};\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
    )
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(workdir)], start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", ok=(200, 403, 404))
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)

"""Supervision of embedded PostgreSQL and NATS (issue 9 §4) and pinned endpoints (issue 14 §3).

``EmbeddedServices.supervise()`` restarts a service that dies — on the same port, socket folder
and data — with a log line naming the exit code and the attempt; clients that were connected
(an asyncpg pool, a nats-py client) carry on. The tests kill real servers with SIGKILL and wait,
with a bound, for them to answer again.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest

from berth.embedded import EmbeddedServiceError, EmbeddedServices
from berth.embedded.supervisor import backoff
from berth_common.db import create_pool
from tests.support.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
BOUND = 120.0  # seconds a restart may take on a loaded machine


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A short temp folder outside pytest's (see ``tests/integration/test_embedded.py``)."""
    root = Path(tempfile.mkdtemp(prefix="berth-sup-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _postmaster(services: EmbeddedServices) -> psutil.Process:
    assert services._postgres is not None and services._postgres.proc is not None
    return psutil.Process(services._postgres.proc.pid)


def _nats_server(services: EmbeddedServices) -> psutil.Process:
    assert services._nats is not None and services._nats.proc is not None
    return psutil.Process(services._nats.proc.pid)


async def _eventually(check: object, what: str) -> None:
    """Await ``check()`` until it returns without raising, at most ``BOUND`` s."""
    deadline = time.monotonic() + BOUND
    while True:
        try:
            await check()  # type: ignore[operator]
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not back after {BOUND}s: {exc!r}") from exc
            await asyncio.sleep(0.2)


async def _restarted(services: EmbeddedServices, old_pid: int) -> None:
    """Raise unless a postmaster other than ``old_pid`` accepts connections."""
    postgres = services._postgres
    assert postgres is not None and postgres.proc is not None and postgres.proc.pid != old_pid
    assert postgres.exit_code() is None and postgres._ready(postgres.proc.pid)


def test_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 7, 8, 20)] == [0.5, 1.0, 2.0, 4.0, 30.0, 30.0, 30.0]


async def test_killed_services_come_back_where_they_were(
    data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="berth.embedded")
    services = EmbeddedServices(data_root / "data")
    endpoints = await asyncio.to_thread(services.start)
    services.supervise()
    pool = await create_pool(endpoints.database_url, min_size=2, max_size=2)
    nc = await nats.connect(endpoints.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream()
        await js.add_stream(name="SUP", subjects=["sup.>"])
        await js.publish("sup.one", b"1")
        await pool.execute("CREATE TABLE kept (n int)")

        old = _nats_server(services)
        old.kill()
        await _eventually(lambda: js.publish("sup.two", b"2"), "NATS")  # the same client reconnects
        assert _nats_server(services).pid != old.pid
        assert (await js.stream_info("SUP")).state.messages == 2  # same store
        assert nc.connected_url is not None and f":{nc.connected_url.port}" in endpoints.nats_url

        old = _postmaster(services)
        old.kill()
        await _eventually(lambda: _restarted(services, old.pid), "the postmaster")
        await pool.execute("INSERT INTO kept VALUES (1)")  # the same pool, at the first try
        assert await pool.fetchval("SELECT count(*) FROM kept") == 1
    finally:
        await nc.close()
        await pool.close()
        await asyncio.to_thread(services.stop)
    text = caplog.text
    assert "embedded nats-server exited with signal SIGKILL; restarting it (attempt 1)" in text
    assert "embedded postgres exited with signal SIGKILL; restarting it (attempt 1)" in text
    assert "embedded postgres restarted (attempt 1)" in text


async def test_a_failing_restart_is_retried_with_backoff(
    data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL cannot start while ``PG_VERSION`` is missing: each try exits with code 1 and is
    logged as the next attempt; once the file is back the next try succeeds."""
    caplog.set_level(logging.INFO, logger="berth.embedded")
    services = EmbeddedServices(data_root / "data", want_nats=False)
    endpoints = await asyncio.to_thread(services.start)
    services.supervise()
    version = data_root / "data" / "postgres" / "PG_VERSION"
    hidden = version.with_name("PG_VERSION.hidden")
    try:
        version.rename(hidden)
        _postmaster(services).kill()
        deadline = time.monotonic() + BOUND
        while "exited with code 1; restarting it (attempt 3)" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.1)
        hidden.rename(version)

        async def query() -> None:
            conn = await asyncpg.connect(endpoints.database_url)
            await conn.close()

        await _eventually(query, "PostgreSQL")
    finally:
        if hidden.exists():
            hidden.rename(version)
        await asyncio.to_thread(services.stop)
    assert "embedded postgres exited with signal SIGKILL; restarting it (attempt 1)" in caplog.text
    assert "embedded postgres exited with code 1; restarting it (attempt 2) in 1.0s" in caplog.text


async def test_stop_ends_supervision_and_every_process(data_root: Path) -> None:
    services = EmbeddedServices(data_root / "data")
    await asyncio.to_thread(services.start)
    services.supervise()
    running = [_postmaster(services), _nats_server(services)]
    await asyncio.to_thread(services.stop)
    assert not [
        t for t in threading.enumerate() if t.name.startswith("berth-supervise-")
    ]  # none left to restart
    assert not [p for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(str(data_root) in a for a in p.info["cmdline"] or [])
    ]
    assert leftovers == []


async def test_pinned_port_and_socket_folder(data_root: Path) -> None:
    port, sockets = free_port(), data_root / "pg-sockets"
    services = EmbeddedServices(data_root / "data", nats_port=port, postgres_socket_dir=sockets)
    try:
        endpoints = await asyncio.to_thread(services.start)
        assert endpoints.nats_url == f"nats://127.0.0.1:{port}"
        assert endpoints.database_url == f"postgresql://postgres@/berth?host={sockets}"
        assert (sockets / ".s.PGSQL.5432").is_socket()
        conn = await asyncpg.connect(endpoints.database_url)
        await conn.close()
    finally:
        await asyncio.to_thread(services.stop)


async def test_pinned_port_in_use_and_shared_socket_folder_are_refused(data_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedServiceError, match=f"NATS port 127.0.0.1:{port}"):
            EmbeddedServices(data_root / "a", want_postgres=False, nats_port=port).start()
    shared = data_root / "shared"
    shared.mkdir()
    (shared / "someone-elses-file").write_text("x")
    with pytest.raises(EmbeddedServiceError, match="must be a new or empty folder"):
        EmbeddedServices(data_root / "b", want_nats=False, postgres_socket_dir=shared)
    assert oct(shared.stat().st_mode & 0o777) != oct(0o700)  # left as it was

"""Embedded PostgreSQL + NATS JetStream (``berth.embedded``): data survives restarts, nothing is orphaned."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest

from berth.embedded import EmbeddedEndpoints, EmbeddedServiceError, EmbeddedServices

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

STREAM = "EMBEDDEDTEST"


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A temp folder outside pytest's ``data_root``.

    As root, PostgreSQL runs as ``embedded_postgres`` and needs ``o+x`` on every parent of the data dir;
    each pytest session (e.g. a concurrent one) resets ``/tmp/pytest-of-root`` to 0700, so data dirs
    under ``data_root`` can become unreachable for that user mid-test.
    """
    root = Path(tempfile.mkdtemp(prefix="berth-embedded-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _service_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes with ``data_dir`` in their command line, plus their descendants."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(str(data_dir) in arg for arg in proc.info["cmdline"] or []):
            found[proc.pid] = proc
            for child in proc.children(recursive=True):
                found[child.pid] = child
    return list(found.values())


def _names(procs: list[psutil.Process]) -> set[str]:
    """Names of the processes in ``procs`` still alive (a zombie has exited, its parent not reaped it)."""
    names = set()
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                names.add(proc.name())
    return names


async def _timed_start(services: EmbeddedServices, label: str) -> EmbeddedEndpoints:
    began = time.perf_counter()
    endpoints = await asyncio.to_thread(services.start)
    print(f"\n[embedded] {label}: start took {time.perf_counter() - began:.2f}s")
    return endpoints


async def _write(endpoints: EmbeddedEndpoints) -> None:
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "berth"
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        await conn.execute("INSERT INTO kept VALUES (1, 'survives restarts')")
    finally:
        await conn.close()
    nc = await nats.connect(endpoints.nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["embeddedtest.>"])
        ack = await js.publish("embeddedtest.hello", b"hello")
        assert ack.stream == STREAM
    finally:
        await nc.close()


async def _read(endpoints: EmbeddedEndpoints) -> tuple[str | None, int]:
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        note = await conn.fetchval("SELECT note FROM kept WHERE id = 1")
    finally:
        await conn.close()
    nc = await nats.connect(endpoints.nats_url)
    try:
        info = await nc.jetstream().stream_info(STREAM)
    finally:
        await nc.close()
    return note, info.state.messages


async def test_restart_keeps_rows_and_streams(data_root: Path) -> None:
    data_dir = data_root / "data"
    services = EmbeddedServices(data_dir)
    first = await _timed_start(services, "first (initdb)")
    assert first.database_url.startswith("postgresql://postgres@/berth?host=")
    assert first.nats_url.startswith("nats://127.0.0.1:")
    assert services.start() == first  # idempotent
    await _write(first)
    running = _service_processes(data_dir)
    assert {"postgres", "nats-server"} <= _names(running)

    services.stop()
    services.stop()  # twice is fine
    assert _names(running) == set()

    again = EmbeddedServices(data_dir)
    try:
        second = await _timed_start(again, "second (existing data)")
        assert await _read(second) == ("survives restarts", 1)
        running = _service_processes(data_dir)
    finally:
        again.stop()
    assert _names(running) == set()
    assert _service_processes(data_dir) == []


async def test_stop_without_start_and_twice(data_root: Path) -> None:
    EmbeddedServices(data_root / "never").stop()
    services = EmbeddedServices(data_root / "nats-only", want_postgres=False)
    endpoints = await _timed_start(services, "nats only")
    assert endpoints.database_url == ""
    nc = await nats.connect(endpoints.nats_url)
    await nc.close()
    services.stop()
    services.stop()
    assert _service_processes(data_root / "nats-only") == []


async def test_second_process_on_same_data_dir_is_refused(data_root: Path) -> None:
    first, second = (EmbeddedServices(data_root, want_postgres=False) for _ in range(2))
    with first, pytest.raises(EmbeddedServiceError, match="in use"):
        second.start()
    with EmbeddedServices(data_root, want_postgres=False) as third:  # the lock was released
        assert third.start().nats_url
    assert _service_processes(data_root) == []


async def test_recovers_from_crashed_run(data_root: Path) -> None:
    """A run that dies without stop() leaves PostgreSQL and nats-server behind; the next start
    replaces them, keeps the data, and its stop leaves nothing running."""
    data_dir = data_root / "data"
    crash = textwrap.dedent(f"""
        import os, asyncio, asyncpg
        from pathlib import Path
        from berth.embedded import EmbeddedServices
        ep = EmbeddedServices(Path({str(data_dir)!r})).start()
        async def write():
            conn = await asyncpg.connect(ep.database_url)
            await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
            await conn.execute("INSERT INTO kept VALUES (1, 'survives crashes')")
            await conn.close()
        asyncio.run(write())
        os._exit(0)
    """)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", crash)
    assert await asyncio.wait_for(proc.wait(), 120) == 0
    assert {"postgres", "nats-server"} <= _names(_service_processes(data_dir))

    services = EmbeddedServices(data_dir)
    try:
        endpoints = await _timed_start(services, "after crash")
        conn = await asyncpg.connect(endpoints.database_url)
        assert await conn.fetchval("SELECT note FROM kept") == "survives crashes"
        await conn.close()
    finally:
        services.stop()
    assert _service_processes(data_dir) == []


def test_embedded_nats_never_takes_the_port_berth_up_is_about_to_serve() -> None:
    """Linux may hand a port ``berth up`` just probed to the next ``bind(0)``; NATS avoids it."""
    from berth.embedded import _free_port

    mine = _free_port()
    assert all(_free_port(frozenset({mine})) != mine for _ in range(300))

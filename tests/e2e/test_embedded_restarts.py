"""``berth up`` supervises its embedded NATS and PostgreSQL (issue 9 §4), pinned to a port and a
socket folder by its options (issue 14 §3).

A real ``berth up --nats-port P --postgres-socket-dir D``: SIGKILL the embedded nats-server, then
the embedded postgres; after each, Berth restarts it where it was (one log line with the exit
code and the attempt), and skopeo pushes and pulls an image within a bounded wait — without
restarting Berth. The events of every push still reach the bus (the gc service's consumer
records each manifest's references), so the relay's and consumers' NATS client reconnected too.
Finally SIGTERM stops Berth and leaves no embedded process behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, skopeo_copy
from tests.e2e.conftest import target_kind
from tests.support.berth_process import BerthProcess, berth_process
from tests.support.net import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
BOUND = 120.0  # seconds a restart and a push may take on a loaded machine


def _child(berth: BerthProcess, name: str) -> psutil.Process:
    """The live process called ``name`` among ``berth up``'s descendants."""
    for proc in psutil.Process(berth.proc.pid).children(recursive=True):
        if proc.name() != name or proc.status() == psutil.STATUS_ZOMBIE:
            continue
        if name != "postgres" or "-D" in proc.cmdline():  # the postmaster, not one of its backends
            return proc
    raise LookupError(name)


def _replaced(berth: BerthProcess, name: str, old: int) -> psutil.Process:
    """Wait (at most ``BOUND`` s) for a new live ``name`` child other than pid ``old``."""
    deadline = time.monotonic() + BOUND
    while True:
        try:
            proc = _child(berth, name)
            if proc.pid != old:
                return proc
        except (LookupError, psutil.Error):
            pass
        assert time.monotonic() < deadline, f"{name} not restarted after {BOUND}s\n{berth.log()}"
        time.sleep(0.2)


def _round_trip(berth: BerthProcess, layout: Path, workdir: Path, feed: str) -> str:
    """Create ``feed``, push ``v1`` to FEED/img with skopeo and pull it back, retrying failed
    attempts for at most ``BOUND`` s (the service may still be coming up); the manifest digest."""
    deadline = time.monotonic() + BOUND
    while True:
        try:
            berth.create_feed(feed)
            break
        except AssertionError:
            assert time.monotonic() < deadline, berth.log()
            time.sleep(0.5)
    remote = docker_ref(berth.host, f"{feed}/img", "v1")
    while True:
        try:
            skopeo_copy(f"oci:{layout}:v1", remote)
            skopeo_copy(remote, f"oci:{workdir / feed}:v1")
            break
        except AssertionError:
            assert time.monotonic() < deadline, berth.log()
            time.sleep(0.5)
    digest: str = oci_layout.resolve_tag(workdir / feed, "v1")["digest"]
    assert digest == oci_layout.resolve_tag(layout, "v1")["digest"]
    return digest


async def _referenced(database_url: str, repository: str, manifest: str) -> None:
    """Wait (at most ``BOUND`` s) until the gc consumer has recorded ``manifest``'s references."""
    deadline = time.monotonic() + BOUND
    while True:
        try:
            conn = await asyncpg.connect(database_url)
            try:
                found = await conn.fetchval(
                    "SELECT count(*) FROM gc.blob_references WHERE repository = $1 AND manifest = $2",
                    repository,
                    manifest,
                )
            finally:
                await conn.close()
            if found:
                return
        except (OSError, asyncpg.PostgresError):
            pass
        assert time.monotonic() < deadline, f"no gc references for {repository}@{manifest}"
        await asyncio.sleep(0.5)


def _scenario(workdir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's embedded services")
    layout = workdir / "oci"
    oci_layout.build_image(layout, "v1")
    nats_port, sockets = free_port(), workdir / "pgsock"
    options = ("--nats-port", str(nats_port), "--postgres-socket-dir", str(sockets))
    with berth_process(workdir, database_url=None, nats_url=None, stream=None, extra_args=options) as berth:
        run = json.loads((berth.data_dir / "run.json").read_text())
        assert run["nats_url"] == f"nats://127.0.0.1:{nats_port}"
        assert run["database_url"] == f"postgresql://postgres@/berth?host={sockets}"
        database_url = run["database_url"]

        def check(feed: str) -> None:
            digest = _round_trip(berth, layout, workdir, feed)
            asyncio.run(_referenced(database_url, f"{feed}/img", digest))

        check("before")
        for name, feed in (("nats-server", "afternats"), ("postgres", "afterpg")):
            old = _child(berth, name)
            old.kill()
            _replaced(berth, name, old.pid)
            check(feed)
            assert f"embedded {name} exited with signal SIGKILL; restarting it (attempt 1)" in berth.log()
        embedded = [_child(berth, "nats-server"), _child(berth, "postgres")]
    assert not [p for p in embedded if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def test_killed_embedded_services_are_restarted_and_pushes_recover(scratch_dir: Path) -> None:
    await asyncio.to_thread(_scenario, scratch_dir)

"""Two real Berth processes on one database and one stream: the event flow survives losing its
leader and losing its stream, without a restart (issue 9, §2 and §4).

Process A starts alone, so its relay and its consumers (gc's references projection, the blob
service's feed consumer) hold the leadership locks; B starts next and stands by. The JetStream
stream is deleted under the running processes; images are pushed, a manifest and a feed are
deleted, the feed is re-created; then A is killed (SIGKILL) and B pushes more. B takes over;
the stream and durables are made again and the consumers catch up from the event store.
In the end every projection equals its rebuild, the feed deletion was reacted to once, and the
new stream holds each event at most once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from berth.ops_cli import rebuild_all
from berth.token_auth import RegistryAuth
from tests.e2e.test_separate_services import fresh_backends
from tests.integration.test_rebuild import snapshot
from tests.spec.helpers import push_image
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER
from tests.support.databases import NATS_URL
from tests.support.serve_process import ServeProcess as Process
from tests.support.serve_process import start, stop, wait_ready

pytestmark = pytest.mark.e2e
QUIET_TIMEOUT = 120.0  # seconds for B to catch up after the takeover (a deadline, not a measure)


@contextlib.asynccontextmanager
async def client(process: Process) -> AsyncIterator[httpx.AsyncClient]:
    auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
    async with httpx.AsyncClient(base_url=process.url, auth=auth, timeout=60) as c:
        yield c


async def create_feed(c: httpx.AsyncClient, name: str) -> None:
    assert (await c.post("/api/feeds", json={"name": name})).status_code == 201


async def quiet(conn: asyncpg.Connection, processes: list[Process]) -> None:
    """Until the relay has saved a checkpoint at the store's last event, gc and the blob feed
    consumer have recorded the last event of their types, and nothing new was appended.

    Raises:
        AssertionError: not within QUIET_TIMEOUT s (with the processes' logs).
    """
    deadline, previous = time.monotonic() + QUIET_TIMEOUT, -1
    while time.monotonic() < deadline:
        row = await conn.fetchrow(
            "SELECT (SELECT max(position) FROM eventstore.events) AS last,"
            " (SELECT position FROM eventstore.checkpoints WHERE name = 'relay') AS relay,"
            " (SELECT max(position) FROM eventstore.events WHERE type LIKE 'manifest.%'"
            "   OR type = 'feed.deleted') AS gc_last,"
            " (SELECT position FROM gc.consumer_positions WHERE name = 'gc-references') AS gc,"
            " (SELECT coalesce(max(position), 0) FROM eventstore.events WHERE type = 'feed.deleted')"
            " AS feeds_last,"
            " (SELECT position FROM blob.consumer_positions WHERE name = 'blob-feeds') AS feeds"
        )
        assert row is not None
        done = (
            (row["relay"] or 0) >= row["last"]
            and (row["gc"] or 0) >= row["gc_last"]
            and (row["feeds"] or 0) >= row["feeds_last"]
        )
        if done and row["last"] == previous:
            return
        previous = row["last"] if done else -1
        await asyncio.sleep(0.5)
    raise AssertionError("not caught up\n" + "\n".join(p.log() for p in processes))


async def stream_positions(stream: str) -> list[int]:
    """``Berth-Position`` of every message in the stream, in stream order."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq=seq)
            out.append(int((msg.headers or {})["Berth-Position"]))
        return out
    finally:
        await nc.close()


async def delete_stream_under_berth(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def test_a_second_process_takes_over_and_a_lost_stream_is_survived(tmp_path: Path) -> None:
    async with fresh_backends() as (database_url, stream):
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env |= {
            "BERTH_DATABASE_URL": database_url,
            "BERTH_NATS_URL": NATS_URL,
            "BERTH_NATS_STREAM": stream,
            "BERTH_STORAGE__ROOT": str(tmp_path / "storage"),
            "BERTH_RELAY_POLL_SECONDS": "0.2",
            "BERTH_BUS__CATCH_UP_SECONDS": "1",
            "BERTH_GC__ENABLED": "false",
            "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BERTH_ACCESS_LOG": "false",
        }
        processes: list[Process] = []
        conn = await asyncpg.connect(database_url)
        try:
            processes.append(await asyncio.to_thread(_started, "a", env, tmp_path))
            a = processes[0]
            async with client(a) as ca:
                for feed in ("one", "two"):
                    await create_feed(ca, feed)
                first = [await push_image(ca, "one/app", f"v{i}") for i in range(3)]
                await push_image(ca, "two/app", "v1")
            await quiet(conn, processes)
            processes.append(await asyncio.to_thread(_started, "b", env, tmp_path))
            b = processes[1]
            two_links = await conn.fetchval("SELECT count(*) FROM blob.links WHERE feed = 'two'")

            await delete_stream_under_berth(stream)
            async with client(a) as ca, client(b) as cb:
                await push_image(cb, "one/app", "v3")
                assert (await ca.delete(f"/v2/one/app/manifests/{first[0].digest}")).status_code == 202
                assert (await cb.delete("/api/feeds/two")).status_code == 204
                await create_feed(cb, "two")
                await push_image(cb, "two/app", "v2")
                os.killpg(a.proc.pid, signal.SIGKILL)  # the leader of the relay and consumers
                for i in range(2):
                    await push_image(cb, "one/more", f"v{i}")
                async with client(b) as cb2:  # B answers and, alone now, leads
                    await push_image(cb2, "one/app", "v4")
            await quiet(conn, processes)

            live = await snapshot(conn)
            assert dict(await rebuild_all(database_url)).keys() >= {"api", "blob", "gc"}
            assert await snapshot(conn) == live
            orphans = await conn.fetchval(  # rows of deleted manifests or feeds
                "SELECT count(*) FROM gc.blob_references r WHERE NOT EXISTS (SELECT 1 FROM"
                " api.manifests m WHERE m.repository = r.repository AND m.digest = r.manifest)"
            )
            assert orphans == 0 and live["gc.blob_references"]
            reactions = await conn.fetch(
                "SELECT stream, count(*) AS n FROM eventstore.events"
                " WHERE metadata->>'actor' = 'system:feed-deleted' AND type = 'blob.unlinked'"
                " GROUP BY stream"
            )
            assert len(reactions) == two_links and all(r["n"] == 1 for r in reactions)
            positions = await stream_positions(stream)
            assert positions and positions == sorted(set(positions))
            async with client(b) as cb:
                metrics = (await cb.get("/metrics")).text
            for name in (
                "berth_relay_lag_events",
                "berth_relay_lag_seconds",
                "berth_relay_publish_failures_total",
            ):
                assert name in metrics
            assert 'berth_consumer_lag_events{consumer="gc-references-' in metrics
        finally:
            await conn.close()
            await asyncio.to_thread(stop, processes)


def _started(name: str, env: dict[str, str], workdir: Path) -> Process:
    process = start(name, ["all"], env, workdir)
    wait_ready([process], "/v2/")
    return process

"""Per-request costs for the capacity model of docs/OPERATIONS.md: ``uv run python -m bench.capacity``.

Runs Berth's all-in-one app in process (real PostgreSQL and NATS, as the tests do) and sends
each kind of request straight into the ASGI app (``bench.calls.call``: no sockets, no client,
so the process's CPU is Berth's own). For each kind it reports, per request:

* ``cpu_ms``: CPU time of the process (the request, and the outbox relay's and the in-process
  consumers' work for the events it caused — the run waits until the relay has published them);
* ``pg_cpu_ms``: CPU time of the PostgreSQL backends serving this database (``/proc/<pid>/stat``
  of the pids ``pg_stat_activity`` names; PostgreSQL runs on this machine);
* ``db_calls``: asyncpg calls (each is one round trip to PostgreSQL: a query, or a pipelined
  statement list), the relay's and consumers' included;
* ``events``: events appended = messages the relay publishes to NATS;
* ``wal_bytes``: PostgreSQL WAL written (``pg_current_wal_lsn`` before and after; the server is
  shared, so the smallest of three rounds is kept — other activity only adds);
* ``stored_bytes``: growth of the blob store.

Kinds: ``get_manifest`` (by tag), ``head_manifest``, ``head_blob`` (a blob the repository has),
``get_blob`` (1 MiB; streamed through Python here — a real server sends it with ``sendfile(2)``),
``push_layer`` (POST, PATCH, PUT of a new 1 MiB layer; ``push_layer_16m``: 16 MiB, for the
per-MiB cost), ``put_manifest`` (a new tag each), ``token`` (``GET /token``, Basic credentials).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.calls import OCI_MANIFEST, bench_auth, call
from tests.support.berth_app import ADMIN_PASSWORD, berth_app

MiB = 1 << 20
KINDS = (
    "get_manifest", "head_manifest", "head_blob", "get_blob", "push_layer", "push_layer_16m", "put_manifest",
    "token",
)  # fmt: skip
_db_calls = 0
WAL_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"


@contextmanager
def counting_db_calls() -> Iterator[None]:
    """Count every asyncpg ``Connection`` query method call (one round trip each)."""
    global _db_calls
    names = ("execute", "executemany", "fetch", "fetchval", "fetchrow")
    originals = {n: getattr(asyncpg.Connection, n) for n in names}

    def counted(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            global _db_calls
            _db_calls += 1
            return await original(*args, **kwargs)

        return wrapper

    for name, original in originals.items():
        setattr(asyncpg.Connection, name, counted(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(asyncpg.Connection, name, original)


def _proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (a tiny procfs read)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


async def postgres_cpu(pool: asyncpg.Pool) -> float:
    """Seconds of CPU the backends connected to this pool's database have used so far."""
    pids = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    total = 0
    for row in pids:
        try:
            fields = _proc_stat(int(row["pid"]))
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


class Bench:
    """The running app, a token and the fixtures every kind needs."""

    def __init__(self, berth: Any, auth: dict[str, str], storage: Path) -> None:
        self.berth, self.app, self.auth, self.storage = berth, berth.app, auth, storage
        self.blob = b""
        self.blob_digest = ""

    async def one(self, kind: str, i: int) -> None:
        """One request (for pushes: one layer) of ``kind``; asserts the expected status."""
        a, app = self.auth, self.app
        accept = {**a, "accept": OCI_MANIFEST}
        if kind == "get_manifest":
            assert (await call(app, "GET", "/v2/bench/x/manifests/v1", accept))[0] == 200
        elif kind == "head_manifest":
            assert (await call(app, "HEAD", "/v2/bench/x/manifests/v1", accept))[0] == 200
        elif kind == "head_blob":
            assert (await call(app, "HEAD", f"/v2/bench/x/blobs/{self.blob_digest}", a))[0] == 200
        elif kind == "get_blob":
            assert (await call(app, "GET", f"/v2/bench/x/blobs/{self.blob_digest}", a))[0] == 200
        elif kind.startswith("push_layer"):
            await self.push(os.urandom(16 * MiB if kind.endswith("16m") else MiB))
        elif kind == "put_manifest":
            status, _ = await call(
                app, "PUT", f"/v2/bench/x/manifests/t{i}", {**a, "content-type": OCI_MANIFEST}, self.manifest
            )
            assert status == 201, status
        elif kind == "token":
            r = await self.berth.client.get(
                "/token",
                params={"service": "berth", "scope": "repository:bench/x:pull,push"},
                auth=httpx.BasicAuth("admin", ADMIN_PASSWORD),
            )
            assert r.status_code == 200

    async def push(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers = await call(self.app, "POST", "/v2/bench/x/blobs/uploads/", self.auth)
        assert status == 202, status
        location = "/v2/" + headers["location"].split("/v2/", 1)[1]
        length = {**self.auth, "content-length": str(len(data))}
        status, _ = await call(self.app, "PATCH", location, length, data)
        assert status == 202, status
        status, _ = await call(self.app, "PUT", location, self.auth, query=f"digest={digest}")
        assert status == 201, status
        return digest

    async def prepare(self) -> None:
        """A 1 MiB blob and a manifest (config + that layer) tagged ``v1``."""
        self.blob = os.urandom(MiB)
        self.blob_digest = await self.push(self.blob)
        config = b'{"architecture":"amd64","os":"linux"}'
        config_digest = await self.push(config)
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": self.blob_digest, "size": len(self.blob)}],
            }
        ).encode()  # fmt: skip
        typed = {**self.auth, "content-type": OCI_MANIFEST}
        status, _ = await call(self.app, "PUT", "/v2/bench/x/manifests/v1", typed, self.manifest)
        assert status == 201

    async def settled(self) -> None:
        """Wait until the relay has published every event (its work is part of the cost)."""
        pool = self.app.state.resources.pool
        relay = self.app.state.relay
        last = await pool.fetchval("SELECT coalesce(max(position), 0) FROM eventstore.events")
        while (relay._position or 0) < last:  # noqa: ASYNC110 (the relay exposes no event)
            await asyncio.sleep(0.01)

    def stored(self) -> int:
        return sum(f.stat().st_size for f in self.storage.rglob("*") if f.is_file())


async def measure_kind(bench: Bench, kind: str, n: int) -> dict[str, float]:
    """Three rounds of ``n`` requests; per request: the median CPU, the smallest WAL delta."""
    global _db_calls
    pool = bench.app.state.resources.pool
    rounds = []
    for r in range(3):
        events0 = await pool.fetchval("SELECT count(*) FROM eventstore.events")
        wal0 = await pool.fetchval(WAL_SQL)
        pg0 = await postgres_cpu(pool)
        stored0, calls0, cpu0 = bench.stored(), _db_calls, time.process_time()
        for i in range(n):
            await bench.one(kind, r * 100_000 + i)
        await bench.settled()
        cpu = time.process_time() - cpu0
        pg = await postgres_cpu(pool) - pg0
        calls = _db_calls - calls0
        wal = await pool.fetchval(WAL_SQL) - wal0
        events = await pool.fetchval("SELECT count(*) FROM eventstore.events") - events0
        rounds.append((cpu, calls, float(wal), events, bench.stored() - stored0, pg))
    cpu = sorted(x[0] for x in rounds)[1]
    return {
        "cpu_ms": round(cpu / n * 1000, 3),
        "pg_cpu_ms": round(sorted(x[5] for x in rounds)[1] / n * 1000, 3),
        "db_calls": round(rounds[0][1] / n, 2),
        "events": round(rounds[0][3] / n, 2),
        "wal_bytes": round(min(x[2] for x in rounds) / n),
        "stored_bytes": round(rounds[0][4] / n),
    }


async def measure(kinds: list[str], n: int) -> dict[str, dict[str, float]]:
    """``{kind: costs}`` (see the module docstring)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results: dict[str, dict[str, float]] = {}
    async with berth_app() as berth:
        await berth.create_feed("bench", public=True)
        auth = await bench_auth(berth)
        bench = Bench(berth, auth, berth.settings.storage.root)
        with counting_db_calls():
            await bench.prepare()
            for kind in kinds:
                for i in range(20):  # warm caches, prepared statements, the token memo
                    await bench.one(kind, 900_000 + i)
                count = max(3, n // 8) if kind.startswith(("push", "token")) else n
                results[kind] = await measure_kind(bench, kind, count)
    return results


async def relay_rate(events: int = 20_000) -> dict[str, float]:
    """Events per second one relay leader publishes from a backlog (and its CPU per event):
    ``events`` ``feed.updated`` events appended in batches of 500, then relayed to a fresh stream."""
    from berth_common.bus import connect_bus
    from berth_common.events import FeedUpdated
    from berth_common.eventstore import EventStore, OutboxRelay
    from tests.support.databases import NATS_URL, delete_stream, eventstore_pool, unique

    stream = unique("BENCH_RELAY_")
    async with eventstore_pool() as pool:
        store = EventStore(pool)
        for start in range(0, events, 500):
            async with store.unit_of_work() as uow:
                for i in range(start, start + 500):
                    await uow.emit(f"feed:f{i}", FeedUpdated(feed=f"f{i}", changes={"public": True}))
        bus = await connect_bus(NATS_URL, stream, stream.lower())
        try:
            relay = OutboxRelay(pool, bus)
            cpu, wall = time.process_time(), time.perf_counter()
            published = 0
            while published < events:
                published += await relay.relay_once()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await bus.close()
            await delete_stream(stream)
    return {"events_per_s": round(events / wall), "cpu_us_per_event": round(cpu / events * 1e6, 1)}


async def append_rate(writers: int = 16, each: int = 300) -> dict[str, float]:
    """Appending transactions per second with ``writers`` concurrent writers (one event each):
    commits of appending transactions are serialised by the append lock (docs/ARCHITECTURE.md)."""
    from berth_common.events import FeedUpdated
    from berth_common.eventstore import EventStore
    from tests.support.databases import eventstore_pool

    async with eventstore_pool(max_size=writers) as pool:
        store = EventStore(pool)

        async def writer(w: int) -> None:
            for i in range(each):
                async with store.unit_of_work() as uow:
                    await uow.emit(f"feed:w{w}-{i}", FeedUpdated(feed=f"w{w}", changes={"n": i}))

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # client_cpu_share near 1: this one Python process, not the lock, was the limit
    rate = round(writers * each / wall)
    return {"appends_per_s": rate, "writers": writers, "client_cpu_share": round(cpu / wall, 2)}


def main() -> None:
    """Print a table of the costs per request kind (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("-n", type=int, default=400, help="requests per round (pushes: n/8)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--relay", action="store_true", help="measure the relay's publish rate and the append rate instead"
    )
    args = parser.parse_args()
    if args.relay:
        print(asyncio.run(relay_rate()), asyncio.run(append_rate()))
        return
    os.environ.setdefault("BERTH_ACCESS_LOG", "false")
    os.environ.setdefault("BERTH_LOG_LEVEL", "WARNING")
    results = asyncio.run(measure(args.only.split(","), args.n))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    head = ("cpu ms", 8), ("pg ms", 7), ("db calls", 9), ("events", 7), ("WAL B", 8), ("stored B", 10)
    print(f"{'kind':16s} " + " ".join(f"{name:>{width}s}" for name, width in head))
    for kind, r in results.items():
        print(
            f"{kind:16s} {r['cpu_ms']:8.3f} {r['pg_cpu_ms']:7.3f} {r['db_calls']:9.2f} {r['events']:7.2f}"
            f" {r['wal_bytes']:8.0f} {r['stored_bytes']:10.0f}"
        )


if __name__ == "__main__":
    main()

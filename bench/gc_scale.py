"""GC at scale (issue 15 §4): ``uv run python -m bench.gc_scale --blobs 10000 [--store fs|s3]``.

Berth runs in process (all services, fresh database and store: filesystem in a temp folder,
or S3 on a local moto server, ``tests/support/stores.py``). The store is seeded with N
unreferenced 1 KiB blobs, linked to repositories of one feed two hours ago: the files are
written through the store's driver and the rows are what N pushes leave in blob's projection
(``blob.blobs``, ``blob.links``; inserted in bulk, without their events, so the seeding takes
seconds, not the N pushes). Then one ``gc run`` (grace 1 h, the gc service's
``collect_garbage``: unlink, delete, sweep) runs while a pusher keeps pushing images (two
blobs and a manifest each) through the registry API; the run's time, the blobs/s, and the
pushes done meanwhile (every one must succeed) are printed. A second run follows, to show
the sweep's cost once its watermark is set (only what was placed since). Not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from berth_common.settings import StorageSettings
from berth_gc.domain.collect import collect_garbage
from tests.support import stores as test_stores
from tests.support.berth_app import BerthApp, berth_app

KiB = 1024
FEED = "gcscale"


async def seed(berth: BerthApp, store_key: str, count: int) -> None:
    """N 1 KiB blobs in the feed's location, each linked from one of 100 repositories."""
    driver = berth.stores.driver(store_key)
    pool = berth.app.state.resources.pool
    when = datetime.now(UTC) - timedelta(hours=2)
    limit = asyncio.Semaphore(64)
    rows: list[tuple[str, str]] = []

    async def one(i: int) -> None:
        data = i.to_bytes(8, "big") + os.urandom(KiB - 8)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        async with limit:

            async def body() -> Any:
                yield data

            await driver.write(f"blobs/sha256/{digest[7:9]}/{digest[7:]}", body())
        rows.append((f"{FEED}/r{i % 100}", digest))

    for start in range(0, count, 5000):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 5000))))
    await pool.executemany(
        "INSERT INTO blob.blobs(store, digest, size, created_at) VALUES ($1, $2, $3, $4)",
        [(store_key, d, KiB, when) for _, d in rows],
    )
    await pool.executemany(
        "INSERT INTO blob.links(repository, digest, feed, size, linked_at, store)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(r, d, FEED, KiB, when, store_key) for r, d in rows],
    )


async def pusher(berth: BerthApp, stop: asyncio.Event, statuses: list[int]) -> None:
    """Push small images (config, layer, manifest) until ``stop``; every status is recorded."""
    c, n = berth.client, 0
    while not stop.is_set():
        n += 1
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": n}).encode()
        layer = os.urandom(KiB)
        descriptors = []
        for data, media in ((config, "application/vnd.oci.image.config.v1+json"),
                            (layer, "application/vnd.oci.image.layer.v1.tar")):  # fmt: skip
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            r = await c.post(f"/v2/{FEED}/live/blobs/uploads/?digest={digest}", content=data)
            statuses.append(r.status_code)
            descriptors.append({"mediaType": media, "digest": digest, "size": len(data)})
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": descriptors[0], "layers": descriptors[1:]}  # fmt: skip
        r = await c.put(
            f"/v2/{FEED}/live/manifests/t{n}",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        statuses.append(r.status_code)


async def run(count: int, kind: str) -> dict[str, Any]:
    """Seed, collect while pushing, collect again; the measurements."""
    extra: dict[str, Any] = {}
    server_cm = test_stores.s3_server() if kind == "s3" else None
    server = server_cm.__enter__() if server_cm is not None else None
    try:
        if server is not None:
            bucket = server.new_bucket()
            extra["stores"] = {"s3": StorageSettings(kind="s3", redirect=False, **server.options(bucket))}
        async with berth_app(with_bus=False, log_level="WARNING", **extra) as berth:
            store_name = "s3" if kind == "s3" else "default"
            await berth.create_feed(FEED, store=store_name)
            started = time.perf_counter()
            await seed(berth, store_name, count)
            seeded = time.perf_counter() - started
            stop, statuses = asyncio.Event(), list[int]()
            push = asyncio.create_task(pusher(berth, stop, statuses))
            await asyncio.sleep(1.0)  # pushes flowing before the run starts
            store = berth.app.state.resources.store
            t0 = time.perf_counter()
            phases: dict[str, float] = {}

            def tick(phase: str, done: int) -> None:
                phases[phase] = round(time.perf_counter() - t0, 2)

            first = await collect_garbage(store, berth.stores, timedelta(hours=1), progress=tick)
            took = time.perf_counter() - t0
            pushes_during = len(statuses)
            t1 = time.perf_counter()
            second = await collect_garbage(store, berth.stores, timedelta(hours=1))
            again = time.perf_counter() - t1
            stop.set()
            await push
            failed = [s for s in statuses if s not in (201,)]
            return {
                "store": kind, "blobs": count, "seed_s": round(seeded, 1), "gc_s": round(took, 2),
                "deleted": first.deleted, "unlinked": first.unlinked,
                "blobs_per_s": round(first.deleted / took), "phases_s": phases,
                "requests_during_and_after": pushes_during, "failed_requests": len(failed),
                "second_run_s": round(again, 2), "second_run_deleted": second.deleted,
            }  # fmt: skip
    finally:
        if server_cm is not None:
            server_cm.__exit__(None, None, None)


def main() -> None:
    """Parse arguments, run, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--blobs", type=int, default=10_000)
    parser.add_argument("--store", choices=("fs", "s3"), default="fs")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    print(json.dumps(asyncio.run(run(args.blobs, args.store))))


if __name__ == "__main__":
    main()

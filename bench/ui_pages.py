"""Web UI page render times with big feeds (issue 11), run by hand:

    uv run python -m bench.ui_pages [--count 10000] [--rounds 30] [--database-url URL]

Starts the all-in-one app in process on a fresh PostgreSQL database (no NATS: the relay is not
needed), pushes through the registry API a feed ``wide`` with ``count`` repositories and a
repository ``deep/app`` with ``count`` tags (distinct image manifests), plus small ones with 10,
logs in through the UI's form and times full page renders (the UI's own work plus its calls to
the token endpoint and the browse API, in process: no network) — first page, a page deep in the
listing, a search — printing the median and 95th percentile in milliseconds. Server-side keyset
pagination should keep the big feed's pages close to the small one's.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import asyncpg
import httpx

from berth.allinone import create_app
from berth.token_auth import RegistryAuth
from berth_common.settings import Settings, StorageSettings

PASSWORD = "bench-ui-admin"
CONFIG = json.dumps(
    {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]}, "rootfs": {"type": "layers"}}
).encode()
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
INDEX = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def image(note: int) -> bytes:
    """A distinct image manifest over the one config blob."""
    config = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": CONFIG_DIGEST,
        "size": len(CONFIG),
    }
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config,
        "layers": [],
        "annotations": {"n": str(note)},
    }
    return json.dumps(doc).encode()


async def gather_limited(jobs: list[Callable[[], Awaitable[None]]], limit: int = 8) -> None:
    """Run ``jobs`` with at most ``limit`` at once."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def seed(client: httpx.AsyncClient, count: int) -> None:
    """Feeds ``wide`` (``count`` repositories), ``deep`` (``deep/app`` with ``count`` tags) and
    ``small`` (10 repositories, ``small/app`` with 10 tags)."""
    for feed in ("wide", "deep", "small"):
        (await client.post("/api/feeds", json={"name": feed})).raise_for_status()

    async def index_repo(name: str) -> None:
        r = await client.put(
            f"/v2/{name}/manifests/latest",
            content=INDEX,
            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
        )
        r.raise_for_status()

    async def tag(repo: str, i: int) -> None:
        r = await client.put(
            f"/v2/{repo}/manifests/t{i:06d}", content=image(i), headers={"Content-Type": MANIFEST}
        )
        r.raise_for_status()

    for repo in ("deep/app", "small/app"):
        r = await client.post(f"/v2/{repo}/blobs/uploads/?digest={CONFIG_DIGEST}", content=CONFIG)
        r.raise_for_status()
    started = time.perf_counter()
    await gather_limited([partial(index_repo, f"wide/img{i:06d}") for i in range(count)])
    await gather_limited([partial(tag, "deep/app", i) for i in range(count)])
    await gather_limited([partial(index_repo, f"small/img{i:02d}") for i in range(10)])
    await gather_limited([partial(tag, "small/app", i) for i in range(10)])
    print(f"seeded {count} repositories and {count} tags in {time.perf_counter() - started:.0f} s")


async def log_in(browser: httpx.AsyncClient) -> None:
    """Through the UI's login form, as a browser does."""
    page = await browser.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = await browser.post("/ui/login", data={"csrf": csrf[1], "username": "admin", "password": PASSWORD})
    assert r.status_code == 303 and "berth_session" in browser.cookies, r.text


async def time_page(browser: httpx.AsyncClient, path: str, rounds: int) -> tuple[float, float]:
    """(median, p95) milliseconds of ``rounds`` renders of ``path`` (after one warm-up)."""
    (await browser.get(path)).raise_for_status()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        r = await browser.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


async def main(count: int, rounds: int, server_url: str) -> None:
    """Create a database, run the app, seed, measure, drop the database."""
    name = f"berth_bench_ui_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory(prefix="berth-bench-ui-") as tmp:
            settings = Settings(
                database_url=server_url.rsplit("/", 1)[0] + f"/{name}",
                nats_url=None,
                data_dir=Path(tmp),
                storage=StorageSettings(root=Path(tmp) / "storage"),
                admin_password=PASSWORD,
                access_log=False,
                log_level="WARNING",
            )
            await run(settings, count, rounds)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(settings: Settings, count: int, rounds: int) -> None:
    """Seed and measure against the running in-process app."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(
                transport=transport,
                base_url="http://bench",
                auth=RegistryAuth("admin", PASSWORD),
                timeout=120,
            ) as api,
            httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as browser,
        ):
            await seed(api, count)
            await log_in(browser)
            cases = [
                ("feeds list", "/ui/feeds"),
                ("small feed (10 repositories)", "/ui/feeds/small"),
                (f"wide feed ({count} repositories), first page", "/ui/feeds/wide"),
                (
                    f"wide feed, page after img{count - 60:06d}",
                    f"/ui/feeds/wide?last=wide/img{count - 60:06d}",
                ),
                ("wide feed, search", "/ui/feeds/wide?q=img0042"),
                ("small repository (10 tags)", "/ui/repositories/small/app"),
                (f"deep repository ({count} tags), first page", "/ui/repositories/deep/app"),
                (
                    f"deep repository, page after t{count - 60:06d}",
                    f"/ui/repositories/deep/app?last=t{count - 60:06d}",
                ),
                ("deep repository, search", "/ui/repositories/deep/app?q=t0042"),
                ("deep repository, tag history (all tags)", "/ui/repositories/deep/app/-/history"),
                (
                    "deep repository, history of the first tag",
                    "/ui/repositories/deep/app/-/history?tag=t000000",
                ),
            ]
            print(f"{'page':<55} {'median ms':>10} {'p95 ms':>8}")
            for label, path in cases:
                median, p95 = await time_page(browser, path, rounds)
                print(f"{label:<55} {median:>10.1f} {p95:>8.1f}")


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count", type=int, default=10_000, help="repositories of the wide feed, tags of deep/app"
    )
    parser.add_argument("--rounds", type=int, default=30, help="renders timed per page")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (a fresh database is made and dropped on it)",
    )
    args = parser.parse_args()
    if args.count < 100 or args.rounds < 1:
        parser.error("--count must be at least 100 and --rounds at least 1")
    asyncio.run(main(args.count, args.rounds, args.database_url))


if __name__ == "__main__":
    cli()

"""Soak: N processes, concurrent pushes and pulls, GC with no grace, a process killed every 30 s.

Issue 9's "done means": ``uv run python -m bench.soak [--minutes 10]`` starts two api and two
blob processes, auth and gc (``berth serve …``) behind ``berth serve proxy`` on a fresh
database, stream and storage folder; runs 100 pullers and 20 pushers that share layers
(``bench.soak_load``); keeps garbage collection looping with a grace period of 0 (every
``--gc-interval`` seconds, 5 by default, in the gc process); SIGKILLs one
random api/blob/auth/gc process every 30 s and starts it again. Afterwards, with the load
stopped, it checks every manifest's blobs (linked, and present in storage), and that every
projection equals its rebuild (``berth projections rebuild``), and prints a JSON summary with
the cleanup events GC recorded meanwhile; it exits 1 if an invariant broke or nothing was pushed.
Run by hand; the numbers go in the issue's closing note and docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.soak_load import Workload
from berth.token_auth import RegistryAuth
from tests.support.databases import NATS_URL, delete_stream, temporary_database, unique
from tests.support.net import free_port, wait_http

REPO_ROOT = Path(__file__).resolve().parents[1]
BERTH = str(Path(sys.executable).parent / "berth")
ADMIN_PASSWORD = "soak-admin-pw"
FEED = "soak"
KILLABLE = ("api-0", "api-1", "blob-0", "blob-1", "auth", "gc")


@dataclass
class Proc:
    """One ``berth serve`` process (restartable on the same port)."""

    name: str
    args: list[str]
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the process."""
        with self.log.open("ab") as out:
            cmd = [BERTH, "serve", *self.args, "--host", "127.0.0.1", "--port", str(self.port)]
            self.popen = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL the process group: a crash, nothing is cleaned up."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


def _environment(dsn: str, stream: str, storage: Path, gc_interval: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env.update(
        BERTH_DATABASE_URL=dsn, BERTH_NATS_URL=NATS_URL, BERTH_NATS_STREAM=stream,
        BERTH_NATS_SUBJECT_PREFIX=stream.lower(), BERTH_STORAGE__ROOT=str(storage),
        BERTH_ADMIN_PASSWORD=ADMIN_PASSWORD, BERTH_ACCESS_LOG="false", BERTH_LOG_LEVEL="WARNING",
        BERTH_GC__GRACE_SECONDS="0", BERTH_GC__INTERVAL_SECONDS=str(gc_interval),
        BERTH_BUS__CATCH_UP_SECONDS="2",  # consumers settle within seconds after the load stops
    )  # fmt: skip
    return env


def _processes(env: dict[str, str], workdir: Path) -> list[Proc]:
    procs = [Proc(n, [n.split("-")[0]], free_port(), env, workdir / f"{n}.log") for n in KILLABLE]
    by = {p.name: p for p in procs}
    routes = {
        "--api": f"{by['api-0'].url},{by['api-1'].url}", "--blob": f"{by['blob-0'].url},{by['blob-1'].url}",
        "--auth": by["auth"].url, "--gc": by["gc"].url,
    }  # fmt: skip
    proxy = Proc("proxy", ["proxy", *[x for kv in routes.items() for x in kv]], free_port(), env,
                 workdir / "proxy.log")  # fmt: skip
    return [*procs, proxy]


def _prepare(url: str) -> None:
    auth = RegistryAuth("admin", ADMIN_PASSWORD)
    httpx.post(f"{url}/api/feeds", json={"name": FEED}, auth=auth, timeout=60).raise_for_status()
    rule = {
        "principal_kind": "anonymous",
        "principal": "",
        "privilege": "add",
        "feed": FEED,
        "effect": "grant",
    }
    httpx.post(f"{url}/api/privileges", json=rule, auth=auth, timeout=60).raise_for_status()


async def _killer(procs: list[Proc], every: float, stop: asyncio.Event, kills: list[str]) -> None:
    rng = random.Random(11)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
            return
        victim = rng.choice([p for p in procs if p.name in KILLABLE])
        victim.kill()
        kills.append(victim.name)
        victim.start()


async def _missing_after(dsn: str, storage: Path) -> list[str]:
    """Blobs referenced by a manifest that are not linked to its repository or not stored."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT r.repository, r.reference, l.store FROM api.manifest_references r"
            " LEFT JOIN blob.links l ON l.repository = r.repository AND l.digest = r.reference"
            " WHERE r.kind = 'blob'"
        )
    finally:
        await conn.close()
    missing = []
    for row in rows:
        hexdigest = row["reference"].split(":", 1)[1]
        if row["store"] is None or not (storage / "blobs" / "sha256" / hexdigest[:2] / hexdigest).is_file():
            missing.append(f"{row['repository']}@{row['reference']}")
    return missing


async def _projection_snapshot(dsn: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
            " WHERE table_schema IN ('api', 'blob', 'gc', 'auth') AND table_type = 'BASE TABLE'"
        )
        snapshot = {}
        for t in sorted(r["t"] for r in tables):
            rows = await conn.fetch(f"SELECT * FROM {t}")
            snapshot[t] = sorted(json.dumps(dict(r), default=str, sort_keys=True) for r in rows)
        return snapshot
    finally:
        await conn.close()


async def _cleanup_counts(dsn: str) -> dict[str, int]:
    """How many cleanup events the run recorded, by type (``blob.unlinked``, ``blob.deleted``,
    ``upload.expired``): proof that GC collected while the load ran."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT type, count(*) AS n FROM eventstore.events"
            " WHERE type IN ('blob.unlinked', 'blob.deleted', 'upload.expired') GROUP BY type"
        )
        return {r["type"]: r["n"] for r in rows}
    finally:
        await conn.close()


async def _soak(
    minutes: float, pushers: int, pullers: int, kill_every: float, gc_interval: float, workdir: Path
) -> dict[str, Any]:
    stream = unique("BERTH_SOAK_")
    async with temporary_database("berth_soak_") as dsn:
        storage = workdir / "storage"
        env = _environment(dsn, stream, storage, gc_interval)
        procs = _processes(env, workdir)
        try:
            for p in procs:
                p.start()
                await asyncio.to_thread(
                    wait_http, f"{p.url}/healthz" if p.name != "proxy" else f"{p.url}/v2/", 120
                )
            proxy = procs[-1]
            await asyncio.to_thread(_prepare, proxy.url)
            workload, kills, stop = Workload(proxy.url, FEED, pushers, pullers), list[str](), asyncio.Event()
            killer = asyncio.create_task(_killer(procs, kill_every, stop, kills))
            load = asyncio.create_task(workload.run())
            await asyncio.sleep(minutes * 60)
            stop.set()
            workload.stop.set()
            tally = await load
            await killer
            for p in procs:  # every process up again and settled before the checks
                await asyncio.to_thread(
                    wait_http, f"{p.url}/healthz" if p.name != "proxy" else f"{p.url}/v2/", 120
                )
            await asyncio.sleep(15)
            missing = await _missing_after(dsn, storage)
            live = await _projection_snapshot(dsn)
            cleanup = await _cleanup_counts(dsn)
            for p in procs:
                p.kill()
            rebuild = await asyncio.to_thread(
                subprocess.run, [BERTH, "projections", "rebuild"], cwd=REPO_ROOT, env=env, capture_output=True
            )
            rebuilt = await _projection_snapshot(dsn)
        finally:
            for p in procs:
                p.kill()
            await delete_stream(stream)
    differ = {t: (len(live[t]), len(rebuilt.get(t, []))) for t in live if live[t] != rebuilt.get(t)}
    result = asdict(tally)
    result.pop("pushed")
    return {
        **result, "manifests_pushed": len(tally.pushed), "kills": len(kills), "killed": kills,
        "manifests_with_missing_blobs": missing[:20], "missing_count": len(missing),
        "projections_equal_rebuild": not differ, "projection_differences": differ,
        "rebuild_exit": rebuild.returncode, "minutes": minutes, "pushers": pushers, "pullers": pullers,
        "gc_interval_seconds": gc_interval, "cleanup_events": cleanup,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the soak, print the JSON summary (exit 1 if an invariant broke)."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--pushers", type=int, default=20)
    parser.add_argument("--pullers", type=int, default=100)
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds between kills")
    parser.add_argument(
        "--gc-interval", type=float, default=5.0,
        help="seconds between GC runs (grace 0 always); at 1 s on 2 cores nearly every push loses its"
        " blobs to GC before its manifest PUT (a correct 404 MANIFEST_BLOB_UNKNOWN) and little is pushed",
    )  # fmt: skip
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="berth-soak-") as tmp:
        soak = _soak(args.minutes, args.pushers, args.pullers, args.kill_every, args.gc_interval, Path(tmp))
        summary = asyncio.run(soak)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, indent=2, default=str))
    broken = summary["verification_failures"] or summary["missing_blobs"] or summary["missing_count"]
    idle = not summary["manifests_pushed"]  # a soak that pushed nothing proves nothing of pushes
    sys.exit(1 if broken or idle or not summary["projections_equal_rebuild"] else 0)


if __name__ == "__main__":
    main()

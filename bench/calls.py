"""Python work per registry request, counted instead of timed: ``uv run python -m bench.calls``.

Wall and CPU times on the shared 2-core development machines swing by ±50 % between runs of
the same code, so small changes to a hot path cannot be judged by timing them. This probe runs
Berth's all-in-one app in process (real PostgreSQL and NATS, as the tests do), sends requests
straight into the ASGI app (no sockets, no client) and counts the Python function calls each
kind of request costs with ``cProfile`` (coroutine resumptions included). The count is
deterministic for the same code and inputs, so a before/after difference of a few percent is
real. Also printed: CPU and wall time per request (indicative only).

Kinds: ``head_blob`` (HEAD of an unknown blob, what pushers ask first), ``head_manifest``
(HEAD by tag), ``push`` (POST, PATCH 8 KiB, PUT ``?digest=``: one small layer, including the
outbox relay's work for its events, which runs in the same process). ``--no-bus`` runs without
NATS (no relay, no consumers) to show what the bus costs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import logging
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.support.berth_app import ADMIN_PASSWORD, BerthApp, berth_app

Send = Callable[[dict[str, Any]], Awaitable[None]]
KINDS = ("head_blob", "head_manifest", "push")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


async def call(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes = b"", query: str = ""
) -> tuple[int, dict[str, str]]:
    """One request into the ASGI ``app``; returns ``(status, response headers)``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5000),
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    out: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}

    await app(scope, receive, send)
    return out["status"], out["headers"]


async def one(kind: str, app: Any, auth: dict[str, str], i: int) -> None:
    """One request (or, for ``push``, one small layer) of ``kind``; asserts the expected status."""
    if kind == "head_blob":
        status, _ = await call(app, "HEAD", f"/v2/bench/x/blobs/sha256:{i:064x}", auth)
        assert status == 404, status
    elif kind == "head_manifest":
        status, _ = await call(app, "HEAD", "/v2/bench/x/manifests/v1", {**auth, "accept": OCI_MANIFEST})
        assert status == 200, status
    else:
        data = os.urandom(8192)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers = await call(app, "POST", "/v2/bench/x/blobs/uploads/", auth)
        assert status == 202, status
        location = "/v2/" + headers["location"].split("/v2/", 1)[1]
        status, _ = await call(app, "PATCH", location, {**auth, "content-length": "8192"}, data)
        assert status == 202, status
        status, _ = await call(app, "PUT", location, auth, query=f"digest={digest}")
        assert status == 201, status


async def bench_auth(berth: BerthApp) -> dict[str, str]:
    """Headers of an admin's bearer token for ``bench/x`` (pull, push), sent to host ``berth.test``."""
    r = await berth.client.get(
        "/token",
        params={"service": "berth", "scope": "repository:bench/x:pull,push"},
        auth=httpx.BasicAuth("admin", ADMIN_PASSWORD),
    )
    return {"authorization": f"Bearer {r.json()['token']}", "host": "berth.test"}


async def measure(kinds: list[str], n: int, bus: bool) -> dict[str, dict[str, float]]:
    """``{kind: {calls, cpu_us, wall_us}}`` per request (per layer for ``push``)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results: dict[str, dict[str, float]] = {}
    async with berth_app(with_bus=bus) as berth:
        await berth.create_feed("bench", public=True)
        auth = await bench_auth(berth)
        config = b"{}"
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        await berth.client.post(f"/v2/bench/x/blobs/uploads/?digest={config_digest}", content=config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "layers": [],
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
            }
        )
        await berth.client.put(
            "/v2/bench/x/manifests/v1", content=manifest, headers={"content-type": OCI_MANIFEST}
        )
        for kind in kinds:
            for i in range(50):  # warm caches, prepared statements, the token memo
                await one(kind, berth.app, auth, i)
            profile = cProfile.Profile()
            cpu, wall = time.process_time(), time.perf_counter()
            profile.enable()
            for i in range(n):
                await one(kind, berth.app, auth, 1000 + i)
            profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            total = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
            results[kind] = {
                "calls": round(total / n),
                "cpu_us": round(cpu / n * 1e6),
                "wall_us": round(wall / n * 1e6),
            }
    return results


def main() -> None:
    """Print the Python calls (and indicative CPU/wall µs, under cProfile) per request kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("-n", type=int, default=300, help="measured requests per kind")
    parser.add_argument("--no-bus", action="store_true", help="run without NATS")
    args = parser.parse_args()
    os.environ.setdefault("BERTH_ACCESS_LOG", "false")
    os.environ.setdefault("BERTH_LOG_LEVEL", "WARNING")
    results = asyncio.run(measure(args.only.split(","), args.n, not args.no_bus))
    for kind, r in results.items():
        print(
            f"{kind:14s} {r['calls']:6d} Python calls per request"
            f"   (cpu {r['cpu_us']} us, wall {r['wall_us']} us under cProfile)"
        )


if __name__ == "__main__":
    main()

"""How many connections trickling a request head a Berth server still holds, over time.

Run by hand: ``uv run python -m bench.slow_heads [--connections 800] [--seconds 20]``. Starts
``berth serve all --workers 2`` (from ``--repo``, default this checkout) on a fresh database,
opens N connections that each send ``GET /v2/ HTTP/1.1`` and then one more header byte every
0.5 s, and prints how many the server has not closed yet, once a second, while a normal
``GET /v2/`` is timed alongside. With the head deadline (``http.header_timeout_seconds``,
default 10 s) the count falls to 0 shortly after it; without one, all stay open.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.databases import temporary_database
from tests.support.net import free_port, wait_http

TRICKLE = 0.5  # seconds between two bytes on each connection


def _count_open(socks: dict[int, socket.socket]) -> None:
    """Drop the sockets the server closed (EOF, reset, or a 408 followed by EOF)."""
    for fd, sock in list(socks.items()):
        try:
            while data := sock.recv(65536):
                if not data:
                    break
            del socks[fd]
        except BlockingIOError:
            try:
                sock.send(b"x")
            except OSError:
                del socks[fd]
        except OSError:
            del socks[fd]


def _trickle(port: int, connections: int, seconds: float) -> None:
    socks: dict[int, socket.socket] = {}
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sock.setblocking(False)
        socks[sock.fileno()] = sock
    began, next_report = time.monotonic(), 0.0
    while (elapsed := time.monotonic() - began) < seconds:
        _count_open(socks)
        if elapsed >= next_report:
            t0 = time.perf_counter()
            status = httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=30).status_code
            ms = (time.perf_counter() - t0) * 1000
            still = f"{len(socks):4d}/{connections}"
            print(f"t={elapsed:5.1f}s  still open: {still}  normal GET /v2/: {status} {ms:.0f} ms")
            next_report += 1.0
        time.sleep(TRICKLE)
    for sock in socks.values():
        sock.close()


def _run(dsn: str, repo: Path, connections: int, seconds: float) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env |= {"BERTH_DATABASE_URL": dsn, "BERTH_ACCESS_LOG": "false", "BERTH_LOG_LEVEL": "WARNING"}
    env |= {"BERTH_STORAGE__ROOT": str(Path("/tmp") / f"berth-slow-heads-{port}")}
    cmd = ["uv", "run", "--frozen", "berth", "serve", "all", "--workers", "2", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", 120)
        _trickle(port, connections, seconds)
    finally:
        proc.terminate()
        proc.wait(30)


async def _main(args: argparse.Namespace) -> None:
    async with temporary_database("berth_bench_") as dsn:
        await asyncio.to_thread(_run, dsn, args.repo, args.connections, args.seconds)


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(prog="python -m bench.slow_heads", description=__doc__)
    parser.add_argument("--connections", type=int, default=800)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to trickle")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

"""Blob transfer cases: pull (1 and 8 streams), push (monolithic, 5 MiB and 64 MiB chunks),
peak server RSS during a large streamed push, and the machine's physical ceilings."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.client import Registry, push_file, push_stream, random_file
from bench.common import MB, Context, MiB, Row

PULL_REPO = "bench/pull"
PARALLEL = 8


def layer(ctx: Context) -> tuple[Path, str]:
    """The shared random layer file of ``ctx.blob_size`` bytes and its digest (made once)."""
    if "layer" not in ctx.shared:
        path = ctx.workdir / "layer.bin"
        ctx.shared["layer"] = (path, random_file(path, ctx.blob_size))
    return ctx.shared["layer"]  # type: ignore[no-any-return]


def curl_get(url: str, headers: dict[str, str]) -> int:
    """Download ``url`` to /dev/null with curl; return the byte count (raises on failure)."""
    cmd = ["curl", "-sSf", "-o", "/dev/null", "-w", "%{size_download}", url]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    return int(subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout)


def parallel_mbps(fetch: Callable[[], int], streams: int) -> float:
    """Run ``fetch`` ``streams`` times at once; total bytes / wall seconds in MB/s."""
    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        total = sum(pool.map(lambda _: fetch(), range(streams)))
    return total / (time.monotonic() - started) / MB


class Pull:
    """Row 1: GET of a 1 GiB blob, one stream and 8 in parallel (curl to /dev/null)."""

    name = "pull"
    rows = [
        Row("pull_1", "blob pull 1 GiB, 1 stream", "MB/s"),
        Row("pull_8", "blob pull 1 GiB, 8 parallel streams (total)", "MB/s"),
    ]

    def setup(self, reg: Registry, ctx: Context) -> None:
        path, digest = layer(ctx)
        push_file(reg, PULL_REPO, path, digest)

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        _, digest = layer(ctx)
        url = f"http://{reg.host}/v2/{PULL_REPO}/blobs/{digest}"
        headers = reg.tokens.repo(PULL_REPO, "pull")
        fetch = lambda: curl_get(url, headers)  # noqa: E731
        return {"pull_1": parallel_mbps(fetch, 1), "pull_8": parallel_mbps(fetch, PARALLEL)}


class Push:
    """Row 2: push of a 1 GiB blob: POST + PUT (monolithic), and PATCHes of 5 MiB and 64 MiB."""

    name = "push"
    modes = {"push_mono": None, "push_5m": 5 * MiB, "push_64m": 64 * MiB}
    rows = [
        Row("push_mono", "blob push 1 GiB, monolithic", "MB/s"),
        Row("push_5m", "blob push 1 GiB, 5 MiB chunks", "MB/s"),
        Row("push_64m", "blob push 1 GiB, 64 MiB chunks", "MB/s"),
    ]

    def setup(self, reg: Registry, ctx: Context) -> None:
        layer(ctx)

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        path, digest = layer(ctx)
        out = {}
        for key, chunk in self.modes.items():
            started = time.monotonic()
            push_file(reg, f"bench/push-{key.replace('_', '-')}-{round_no}", path, digest, chunk)
            out[key] = path.stat().st_size / (time.monotonic() - started) / MB
        return out


def rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS over ``pids`` (bytes; vanished processes count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _pattern_stream(size: int, block: bytes) -> Iterator[bytes]:
    """``size`` bytes made of ``block`` repeated (a generator: nothing is held whole)."""
    left = size
    while left:
        piece = block if left >= len(block) else block[:left]
        left -= len(piece)
        yield piece


def _pattern_digest(size: int, block: bytes) -> str:
    hasher = hashlib.sha256()
    for piece in _pattern_stream(size, block):
        hasher.update(piece)
    return "sha256:" + hasher.hexdigest()


class PeakRss:
    """Row 5: peak RSS (summed over the server's processes) while a 10 GiB blob streams in.

    The server's processes are the registry's own process tree: for Berth the supervisor and its
    workers, not the PostgreSQL and NATS it needs (the machine's shared ones, which also serve
    other databases and streams, so their RSS cannot be attributed to this run); Distribution
    needs neither. The rows say so.
    """

    name = "rss"
    rows = [
        Row(
            "rss_idle",
            "server RSS before the big push (server's processes; not PostgreSQL, NATS)",
            "MiB",
            "lower",
        ),
        Row(
            "rss_peak",
            "peak server RSS, 10 GiB push (server's processes; not PostgreSQL, NATS)",
            "MiB",
            "lower",
        ),
        Row("rss_growth", "RSS growth during the 10 GiB push (peak - before)", "MiB", "lower"),
        Row("push_big", "blob push 10 GiB, monolithic, streamed", "MB/s"),
    ]

    def __init__(self, pids: dict[str, Callable[[], list[int]]], storage: dict[str, Path]) -> None:
        self.pids, self.storage = pids, storage
        self.block = os.urandom(4 * MiB)

    def setup(self, reg: Registry, ctx: Context) -> None:
        if "big_digest" not in ctx.shared:
            ctx.shared["big_digest"] = _pattern_digest(ctx.big_size, self.block)

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        pids = self.pids[reg.name]()
        idle, peak, stop = rss_bytes(pids), [0], threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], rss_bytes(self.pids[reg.name]()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            push_stream(
                reg,
                f"bench/big-{round_no}",
                _pattern_stream(ctx.big_size, self.block),
                ctx.big_size,
                ctx.shared["big_digest"],
            )
        finally:
            elapsed = time.monotonic() - started
            stop.set()
            sampler.join()
            _remove_big_files(self.storage[reg.name], ctx.big_size // 2)
        peak[0] = max(peak[0], idle)
        return {
            "rss_idle": idle / MiB,
            "rss_peak": peak[0] / MiB,
            "rss_growth": (peak[0] - idle) / MiB,
            "push_big": ctx.big_size / elapsed / MB,
        }


def _remove_big_files(root: Path, threshold: int) -> None:
    """Delete files larger than ``threshold`` under ``root`` (the big blob: keep the disk free)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.stat().st_size > threshold:
                path.unlink()


def ceilings(ctx: Context, nginx_host: str) -> dict[str, float]:
    """Physical limits on this machine, in MB/s.

    ``copy``: ``dd`` of the layer file to a new file (1 MiB blocks, page cache, no fsync, as the
    registries write); ``loopback_get_1``/``_8``: curl from nginx (sendfile) over loopback, 1 and
    8 streams; ``loopback_put``: socat pushing the file over loopback into a file.
    """
    path, _ = layer(ctx)
    size = path.stat().st_size
    copy = ctx.workdir / "copy.bin"
    started = time.monotonic()
    subprocess.run(["dd", f"if={path}", f"of={copy}", "bs=1M"], check=True, capture_output=True)
    out = {"copy": size / (time.monotonic() - started) / MB}
    copy.unlink()
    url = f"http://{nginx_host}/{path.name}"
    out["loopback_get_1"] = parallel_mbps(lambda: curl_get(url, {}), 1)
    out["loopback_get_8"] = parallel_mbps(lambda: curl_get(url, {}), PARALLEL)
    out["loopback_put"] = _socat_put(path, ctx.workdir / "socat.bin")
    return out


def _socat_put(path: Path, target: Path) -> float:
    from tests.support.net import free_port

    port = free_port()
    server = subprocess.Popen(
        ["socat", "-u", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", f"OPEN:{target},creat,trunc"]
    )
    try:
        _wait_listening(port, server)
        started = time.monotonic()
        subprocess.run(["socat", "-u", f"FILE:{path}", f"TCP:127.0.0.1:{port}"], check=True, timeout=600)
        server.wait(60)
        rate = path.stat().st_size / (time.monotonic() - started) / MB
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        target.unlink(missing_ok=True)
    return rate


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Wait until 127.0.0.1:``port`` is in the LISTEN state (read from ``/proc/net/tcp``, so the
    single connection a ``socat TCP-LISTEN`` accepts is not spent on a probe).

    Raises:
        RuntimeError: ``proc`` exited or ``timeout`` s passed first.
    """
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"socat exited with {proc.returncode} before listening on {port}")
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        if any(r.split()[1] == wanted and r.split()[3] == "0A" for r in rows):  # 0A: LISTEN
            return
        time.sleep(0.02)
    raise RuntimeError(f"socat not listening on 127.0.0.1:{port} after {timeout} s")


def cleanup(ctx: Context) -> None:
    """Remove the scratch files made by these cases."""
    for name in ("layer.bin", "copy.bin", "socat.bin"):
        (ctx.workdir / name).unlink(missing_ok=True)
    shutil.rmtree(ctx.workdir / "scratch", ignore_errors=True)

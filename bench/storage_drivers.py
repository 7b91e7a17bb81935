"""Throughput of the storage drivers: ``uv run python -m bench.storage_drivers [--size-mib 1024]``.

Writes SIZE MiB through each driver twice — one-shot ``write`` (how a monolithic upload or a
move lands) and a resumable ``writer`` that flushes every 64 MiB (a chunked upload) — then
reads it back in 1 MiB chunks, and prints MiB/s per step. Filesystem in a temp folder; S3 on a
local moto server and Azure on a local Azurite (``tests/support/stores.py``; both are
emulators written in Python and Node, so their numbers say what the drivers cost on this
machine, not what MinIO, AWS or Azure would do). Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from berth_common.storage import StorageDriver, create_driver
from tests.support import stores

MiB = 1 << 20
CHUNK = bytes(range(256)) * (MiB // 256)  # 1 MiB, the size Berth's upload path re-cuts bodies to
FLUSH_EVERY = 64  # MiB: a PATCH per 64 MiB


async def _chunks(count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield CHUNK


async def _timed(step: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await step()
    return time.perf_counter() - start


async def measure(name: str, driver: StorageDriver, size_mib: int) -> dict[str, float]:
    """MiB/s of write, writer (flush every 64 MiB) and read of ``size_mib`` MiB on ``driver``."""

    async def write() -> None:
        assert await driver.write("bench/one-shot", _chunks(size_mib)) == size_mib * MiB

    async def resumable() -> None:
        state = None
        for start in range(0, size_mib, FLUSH_EVERY):
            writer = await driver.writer("bench/resumable", state)
            for _ in range(min(FLUSH_EVERY, size_mib - start)):
                await writer.write(CHUNK)
            state = await writer.flush()
            await writer.close()
        writer = await driver.writer("bench/resumable", state)
        await writer.commit()

    async def read() -> None:
        total = 0
        async for piece in driver.read("bench/one-shot", chunk_size=MiB):
            total += len(piece)
        assert total == size_mib * MiB

    steps = (("write", write), ("writer", resumable), ("read", read))
    result = {step: size_mib / await _timed(fn) for step, fn in steps}
    await driver.delete("bench")
    print(f"{name:<11} write {result['write']:7.1f} MiB/s   writer {result['writer']:7.1f} MiB/s   "
          f"read {result['read']:7.1f} MiB/s", flush=True)  # fmt: skip
    return result


async def main(size_mib: int, kinds: list[str]) -> None:
    """Measure each driver kind in ``kinds``."""
    with contextlib.ExitStack() as stack:
        if "filesystem" in kinds:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="berth-bench-")))
            await _run("filesystem", create_driver("filesystem", root=root), size_mib)
        if "s3" in kinds:
            s3 = stack.enter_context(stores.s3_server())
            bucket = await anyio.to_thread.run_sync(s3.new_bucket)
            await _run(f"s3 ({s3.kind})", create_driver("s3", **s3.options(bucket)), size_mib)
        if "azure" in kinds:
            azure = stack.enter_context(stores.azure_server())
            options = azure.options(await azure.new_container())
            await _run(f"azure ({azure.kind})", create_driver("azure", **options), size_mib)


async def _run(name: str, driver: StorageDriver, size_mib: int) -> None:
    try:
        await measure(name, driver, size_mib)
    finally:
        await driver.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--kinds", default="filesystem,s3,azure")
    args = parser.parse_args()
    print(stores.decide().describe())
    asyncio.run(main(args.size_mib, args.kinds.split(",")))

"""Small asyncio helpers for tests that run background loops (relays, consumers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


@contextlib.asynccontextmanager
async def running(coro: Awaitable[Any]) -> AsyncIterator[asyncio.Future[Any]]:
    """Run ``coro`` as a task for the ``with`` block (yielded); cancel and await it afterwards.

    The cancellation is repeated until the task ends: on Python 3.11 ``asyncio.wait_for`` can
    swallow a cancellation that arrives as its awaitable completes (nats-py waits for each
    JetStream ack that way), and a relay that lost it went on relaying, so the test hung in
    here until its timeout (seen in long runs of test_gc_references)."""
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], Awaitable[bool]], interval: float = 0.05) -> None:
    """Poll ``condition`` every ``interval`` seconds until it is true (the test timeout bounds it)."""
    while True:
        if await condition():
            return
        await asyncio.sleep(interval)

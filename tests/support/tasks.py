"""Small asyncio helpers for tests that run background loops (relays, consumers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


@contextlib.asynccontextmanager
async def running(coro: Awaitable[Any]) -> AsyncIterator[asyncio.Future[Any]]:
    """Run ``coro`` as a task for the ``with`` block (yielded); cancel and await it afterwards."""
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], Awaitable[bool]], interval: float = 0.05) -> None:
    """Poll ``condition`` every ``interval`` seconds until it is true (the test timeout bounds it)."""
    while True:
        if await condition():
            return
        await asyncio.sleep(interval)

"""Runtime: background loops always stop at shutdown."""

from __future__ import annotations


async def test_stop_tasks_recancels_a_loop_that_swallows_cancellation() -> None:
    import asyncio

    from berth_common.runtime import stop_tasks

    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 2:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await stop_tasks([task], within=5)
    assert task.done() and swallowed == 3

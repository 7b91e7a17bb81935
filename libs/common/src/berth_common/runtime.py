"""Resources shared by a process's services: pool, event store, bus, storage, settings.

Built in an app's lifespan (never at import time) and handed to each service's ``setup``.
In the all-in-one process (``berth up``, ``berth serve all``) one set of resources serves all
four services; separately deployed services each build their own from the same settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import structlog
from starlette.applications import Starlette

from berth_common.bus import Bus, connect_bus
from berth_common.db import apply_migrations, create_pool, ensure_database, load_migrations
from berth_common.eventstore import EventStore, OutboxRelay
from berth_common.settings import Settings

if TYPE_CHECKING:
    from berth_common.telemetry.sampler import Sampler

log = structlog.get_logger("berth.runtime")


@dataclass
class Resources:
    """Everything a service needs at run time (see module docstring).

    ``samplers``: coroutines that refresh gauges read on a timer (``telemetry.sampler``); a
    service adds its own in ``start`` (the blob service counts open upload sessions).
    """

    settings: Settings
    pool: asyncpg.Pool
    store: EventStore
    bus: Bus | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    samplers: list[Sampler] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings, *, with_bus: bool = True) -> Resources:
        """Connect to PostgreSQL (creating the database if needed) and, optionally, NATS.

        Raises:
            ValueError: ``database_url`` is not set.
        """
        if not settings.database_url:
            raise ValueError("BERTH_DATABASE_URL is not set (berth up sets it for embedded mode)")
        await ensure_database(settings.database_url)
        pool = await create_pool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            idle_transaction_seconds=settings.database.idle_transaction_seconds,
        )
        await apply_migrations(pool, load_migrations("eventstore", "berth_common.eventstore.migrations"))
        bus = None
        if with_bus and settings.nats_url:
            bus = await connect_bus(
                settings.nats_url,
                settings.nats_stream,
                subject_prefix(settings),
                max_message_bytes=settings.bus.max_message_bytes,
                catch_up_seconds=settings.bus.catch_up_seconds,
            )
        return cls(settings, pool, EventStore(pool), bus)

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop (relay, consumer) that restarts after unexpected errors."""

        async def supervise() -> None:
            while True:
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("background.crashed", task=name)
                    await asyncio.sleep(1.0)

        self.tasks.append(asyncio.create_task(supervise(), name=name))

    def at_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` (e.g. a storage driver's ``close``) after the background loops stop."""
        self.closers.append(closer)

    async def close(self) -> None:
        """Stop background loops, run the closers, then close the bus and the pool."""
        await stop_tasks(self.tasks)
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:
                log.exception("close.failed", closer=getattr(closer, "__qualname__", repr(closer)))
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.close()
        try:
            await asyncio.wait_for(self.pool.close(), 10.0)
        except TimeoutError:
            log.warning("pool.close_timeout")
            self.pool.terminate()


async def stop_tasks(tasks: list[asyncio.Task[None]], within: float = 10.0) -> None:
    """Cancel ``tasks`` and wait for them, at most ``within`` seconds in all.

    A task that swallows one cancellation (a library catching ``CancelledError``, or the
    ``asyncio.wait_for`` race of Python < 3.12) is cancelled again every half second, so
    shutdown never hangs on a background loop; one still running at the end is logged.
    """
    deadline = asyncio.get_running_loop().time() + within
    pending = {t for t in tasks if not t.done()}
    while pending and asyncio.get_running_loop().time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        if task.done() and not task.cancelled():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
    if pending:
        log.warning("background.not_stopped", tasks=sorted(t.get_name() for t in pending))


def start_relay(resources: Resources, app: Starlette) -> OutboxRelay | None:
    """Run an outbox relay candidate in this process when a bus is configured (docs/DESIGN.md §2).

    Every process that appends events calls this (the all-in-one app, ``berth serve api`` and
    ``berth serve blob``): all are candidates, one session advisory lock elects the active
    relay, and another takes over when its process ends. The relay is put on
    ``app.state.relay``. Returns ``None`` (no relay) when ``resources.bus`` is ``None``.
    """
    if resources.bus is None:
        log.warning("relay.disabled", reason="BERTH_NATS_URL is not set; events stay in the outbox")
        return None
    relay = OutboxRelay(resources.pool, resources.bus, poll_seconds=resources.settings.relay_poll_seconds)
    app.state.relay = relay
    resources.spawn("relay", relay.run)
    return relay


def subject_prefix(settings: Settings) -> str:
    """The bus subject prefix: ``berth`` for the default stream, else the stream name lowercased.

    So that test runs with their own stream names never overlap subjects (JetStream forbids it).
    """
    if settings.nats_subject_prefix != "berth" or settings.nats_stream == "BERTH_EVENTS":
        return settings.nats_subject_prefix
    return settings.nats_stream.lower()

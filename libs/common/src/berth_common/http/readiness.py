"""``/readyz``: whether this process should get traffic (Kubernetes readiness probe).

Ready means: PostgreSQL answers (within 2 s), every schema migration this process's code
knows is recorded (``berth_common.db.known_migrations``), and — for a service that cannot work
without it (``requires_bus``: the gc service, whose only input is its JetStream consumer) — the
NATS connection is up. Services that append events stay ready through a NATS outage: the
outbox relay only publishes later (docs/ARCHITECTURE.md). ``/healthz`` stays the liveness
probe: the process serves, nothing more (a database outage must not restart every pod).
"""

from __future__ import annotations

import asyncio
from typing import Any

from berth_common.db import missing_migrations
from berth_common.runtime import Resources

CHECK_TIMEOUT = 2.0  # seconds per check


async def readiness(resources: Resources | None, *, requires_bus: bool) -> tuple[bool, dict[str, Any]]:
    """``(ready, checks)``: each check is ``"ok"``, ``"down"`` or what is missing.

    ``resources`` is ``None`` for a service without backing services (the UI): always ready.
    """
    if resources is None:
        return True, {}
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with resources.pool.acquire() as conn:
                missing = await missing_migrations(conn)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if not missing else {"missing": missing}
    except Exception as exc:  # unreachable, timed out, authentication …
        checks["database"] = f"down: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    bus = resources.bus
    if bus is not None:
        checks["bus"] = "ok" if bus.nc.is_connected else "down"
    elif requires_bus:
        checks["bus"] = "not configured"
    ready = checks["database"] == "ok" and checks["migrations"] == "ok"
    if requires_bus:
        ready = ready and checks["bus"] == "ok"
    return ready, checks

"""The blob service's gauge read on a timer: open upload sessions (docs/OPERATIONS.md, "Metrics")."""

from __future__ import annotations

import asyncpg

from berth_common.telemetry.metrics import UPLOAD_SESSIONS
from berth_common.telemetry.sampler import Sampler


def upload_sessions_sampler(pool: asyncpg.Pool) -> Sampler:
    """A sampler setting ``berth_upload_sessions_open`` to the rows of ``blob.uploads``: sessions
    started and not yet completed, cancelled or expired, across every replica."""

    async def upload_sessions_open() -> None:
        UPLOAD_SESSIONS.set(await pool.fetchval("SELECT count(*) FROM blob.uploads"))

    return upload_sessions_open

"""Rate-limited error lines for work that keeps failing (a relay publish, a consumer apply).

A failure that repeats must be visible — an error line with what failed, each time — without
flooding the log when the retry loop runs several times a second: the first failure of a
thing is logged at once, repeats at most once per ``every_seconds``, each line carrying the
number of attempts so far (docs/ARCHITECTURE.md, "Observability").
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

import asyncpg


class FailureLog:
    """Error lines for one retry loop (one relay, one consumer).

    Args:
        logger: the structlog logger to write to.
        event: the log event name (``relay.publish_failed``).
        every_seconds: least interval between two lines about the same failing thing.
    """

    def __init__(self, logger: Any, event: str, every_seconds: float = 10.0) -> None:
        self.logger, self.event, self.every = logger, event, every_seconds
        self._key: Hashable = None
        self._attempts = 0
        self._logged_at = float("-inf")

    def failed(self, key: Hashable, **fields: Any) -> bool:
        """Count a failure of ``key`` (what failed, e.g. an event's position); log it unless a
        line about ``key`` was written less than ``every_seconds`` ago. Returns whether it
        logged."""
        if key != self._key:
            self._key, self._attempts, self._logged_at = key, 0, float("-inf")
        self._attempts += 1
        now = time.monotonic()
        if now - self._logged_at < self.every:
            return False
        self._logged_at = now
        self.logger.error(self.event, attempts=self._attempts, **fields)
        return True

    def recovered(self) -> None:
        """The failing thing went through: the next failure is logged at once."""
        self._key, self._attempts, self._logged_at = None, 0, float("-inf")


def describe(exc: BaseException) -> str:
    """``exc`` for a log line: its class and message (NATS API errors carry code and
    description in ``str``, not in ``repr``)."""
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text and name not in text else (text or repr(exc))


def connection_gone(conn: Any) -> bool:
    """Whether a pooled connection (one that holds a session advisory lock) is lost: closed,
    or already detached from its proxy by the pool after the server ended it."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True

"""Restart embedded PostgreSQL and NATS when they die (``berth up``; issue 9 §4).

A daemon thread per service looks at it twice a second. When one has exited it logs the exit code
and the attempt number, waits (0.5 s, doubling per consecutive attempt, at most 30 s) and
starts it again on the same port, socket folder and data folder, so Berth's connections find it
where they left it: the asyncpg pool replaces dead connections on their next use and the NATS
client reconnects on its own (``berth_common.bus``). A service that then stays up for a minute
starts counting attempts from one again. ``stop()`` ends the thread (interrupting a wait or a
start in progress) before the services are stopped, so nothing is restarted during shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from berth.embedded.common import describe_exit

_log = logging.getLogger("berth.embedded")

POLL_SECONDS = 0.5
FIRST_DELAY = 0.5  # seconds before the first restart; doubled per further attempt
MAX_DELAY = 30.0
STABLE_SECONDS = 60.0  # up this long: the next exit is attempt 1 again


class Supervised(Protocol):
    """What the supervisor needs of a service (``EmbeddedPostgres``, ``EmbeddedNats``)."""

    name: str

    def exit_code(self) -> int | None:
        """The exit code once the service's process has exited, else None."""
        ...

    def restart(self, stopping: threading.Event) -> None:
        """Start the service again; return early when ``stopping`` is set."""
        ...


@dataclass
class _State:
    attempt: int = 0
    up_since: float = field(default_factory=time.monotonic)


def backoff(attempt: int) -> float:
    """Seconds to wait before restart ``attempt`` (1, 2, …): 0.5, 1, 2, 4, … at most 30."""
    return float(min(FIRST_DELAY * 2 ** (attempt - 1), MAX_DELAY))


class Supervisor:
    """The restart loop over ``services`` (see module docstring). ``start()``, then ``stop()``."""

    def __init__(self, services: list[Supervised]) -> None:
        self.services = services
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start watching (once)."""
        if self._threads:
            return
        for service in self.services:
            name = f"berth-supervise-{service.name}"
            thread = threading.Thread(target=self._watch, args=(service,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop watching; returns once no restart is in progress."""
        self.stopping.set()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _watch(self, service: Supervised) -> None:
        state = _State()
        while not self.stopping.wait(POLL_SECONDS):
            try:
                self._check(service, state)
            except Exception:  # never let one bad restart end the supervision
                _log.exception("embedded %s: restart failed", service.name)

    def _check(self, service: Supervised, state: _State) -> None:
        code = service.exit_code()
        if code is None:
            if state.attempt and time.monotonic() - state.up_since >= STABLE_SECONDS:
                state.attempt = 0
            return
        state.attempt += 1
        delay = backoff(state.attempt)
        _log.warning(
            "embedded %s exited with %s; restarting it (attempt %d) in %.1fs",
            service.name,
            describe_exit(code),
            state.attempt,
            delay,
        )
        if self.stopping.wait(delay):
            return
        service.restart(self.stopping)
        state.up_since = time.monotonic()
        if service.exit_code() is None and not self.stopping.is_set():
            _log.info("embedded %s restarted (attempt %d)", service.name, state.attempt)

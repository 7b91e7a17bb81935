"""NATS JetStream: the stream that carries Berth's events, publishing with de-duplication.

Subjects are ``<prefix>.<aggregate>.<fact>`` (``berth.manifest.pushed``); each message carries
``Nats-Msg-Id`` = the event id, so re-publishing after a relay crash is de-duplicated by
JetStream within the stream's duplicate window, and the W3C ``traceparent`` of the request
that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

DUPLICATE_WINDOW_SECONDS = 600.0
log = structlog.get_logger("berth.bus")


def subject_for(prefix: str, event_type: str) -> str:
    """``subject_for("berth", "manifest.pushed")`` → ``"berth.manifest.pushed"``."""
    return f"{prefix}.{event_type}"


@dataclass
class Bus:
    """A connected JetStream context and the stream Berth publishes to."""

    nc: NATS
    js: JetStreamContext
    stream: str
    prefix: str

    async def publish(self, envelope: dict[str, Any]) -> int:
        """Publish one event envelope; return its stream sequence (the duplicate's, if re-sent).

        Raises:
            nats.errors.Error: NATS is unreachable or did not acknowledge.
        """
        return await self.publish_encoded(
            envelope["type"],
            int(envelope["position"]),
            str(envelope["event_id"]),
            (envelope.get("metadata") or {}).get("traceparent"),
            json.dumps(envelope, separators=(",", ":")).encode(),
        )

    async def publish_encoded(
        self, event_type: str, position: int, event_id: str, traceparent: str | None, data: bytes
    ) -> int:
        """Publish an envelope already encoded as JSON ``data`` (the relay builds it in SQL).

        Headers: ``Nats-Msg-Id`` = ``event_id`` (JetStream de-duplication), ``Berth-Type``,
        ``Berth-Position`` and the W3C ``traceparent`` if any. Returns the stream sequence.

        Raises:
            nats.errors.Error: NATS is unreachable or did not acknowledge.
        """
        headers = {"Nats-Msg-Id": event_id, "Berth-Type": event_type, "Berth-Position": str(position)}
        if traceparent:
            headers["traceparent"] = traceparent
        ack = await self.js.publish(
            subject_for(self.prefix, event_type), data, stream=self.stream, headers=headers
        )
        return int(ack.seq)

    async def close(self) -> None:
        """Close the connection (not ``drain``: a drained pull subscription can wait forever)."""
        if not self.nc.is_closed:
            with contextlib.suppress(asyncio.TimeoutError, nats.errors.Error):
                await asyncio.wait_for(self.nc.close(), 5.0)


async def _error(exc: Exception) -> None:
    """One line per client error (nats-py's default logs a traceback for every reconnect try)."""
    log.warning("bus.error", error=repr(exc))


async def _disconnected() -> None:
    log.warning("bus.disconnected", note="reconnecting; publishing and consuming resume after")


async def _reconnected() -> None:
    log.info("bus.reconnected")


async def connect_bus(url: str, stream: str, prefix: str, *, name: str = "berth") -> Bus:
    """Connect to NATS and make sure the events stream exists (file storage, limits retention).

    The client reconnects for ever (logging one line per disconnect, error and reconnect), so a
    restarted NATS — ``berth up`` restarts its embedded one — is picked up without a restart.

    Raises:
        nats.errors.NoServersError: NATS is not reachable.
    """
    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,  # never give up: an embedded nats-server is restarted
        reconnect_time_wait=0.5,
        connect_timeout=5,
        error_cb=_error,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
    )
    js = nc.jetstream()
    config = StreamConfig(
        name=stream,
        subjects=[f"{prefix}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(config)
    return Bus(nc, js, stream, prefix)

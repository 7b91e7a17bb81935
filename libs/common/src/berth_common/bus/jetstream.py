"""NATS JetStream: the stream that carries Berth's events, publishing with de-duplication.

Subjects are ``<prefix>.<aggregate>.<fact>`` (``berth.manifest.pushed``); each message carries
``Nats-Msg-Id`` = the event id, so re-publishing after a relay crash is de-duplicated by
JetStream within the stream's duplicate window, and the W3C ``traceparent`` of the request
that caused it.

A bus message is bounded (docs/ARCHITECTURE.md, "Events are the source of truth"): the relay
publishes an event's payload inline only when the envelope's JSON is at most
``Bus.message_limit`` bytes, which never exceeds the connected server's ``max_payload`` less a
margin for the headers. The stream is the carrier, not the record: when it is lost (NATS
restarted with an empty store, a deleted stream), ``Bus.ensure_stream`` makes it again with the
same configuration and consumers catch up from the event store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Final

import nats
import nats.errors
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from berth_common.telemetry.tracing import traced_publish

DUPLICATE_WINDOW_SECONDS = 600.0
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024
DEFAULT_CATCH_UP_SECONDS: Final = 30.0
HEADER_MARGIN: Final = 4096  # bytes of max_payload kept for headers (ours take < 400)
MAX_TRACEPARENT: Final = 256  # a longer client-sent traceparent is not forwarded as a header
MULTI_FILTER_VERSION: Final = (2, 10)  # NATS servers from 2.10 take several filter subjects
log = structlog.get_logger("berth.bus")


def subject_for(prefix: str, event_type: str) -> str:
    """``subject_for("berth", "manifest.pushed")`` → ``"berth.manifest.pushed"``."""
    return f"{prefix}.{event_type}"


@dataclass
class Bus:
    """A connected JetStream context, the stream Berth publishes to, and how it is used.

    ``max_message_bytes``: the configured bound of an envelope carried inline (see
    ``message_limit``); ``catch_up_seconds``: how often an idle consumer checks the event store
    and its durable (``berth_common.eventstore.consumer``).
    """

    nc: NATS
    js: JetStreamContext
    stream: str
    prefix: str
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    catch_up_seconds: float = DEFAULT_CATCH_UP_SECONDS

    @property
    def message_limit(self) -> int:
        """The largest envelope JSON (bytes) published inline: ``max_message_bytes``, but never
        more than the server's ``max_payload`` (as of the current connection) less the header
        margin (a quarter of ``max_payload`` on servers configured below 16 KiB)."""
        server = self.nc.max_payload
        return max(1, min(self.max_message_bytes, server - min(HEADER_MARGIN, server // 4)))

    @property
    def multiple_filters(self) -> bool:
        """Whether the connected server takes several filter subjects per consumer (≥ 2.10)."""
        version = self.nc.connected_server_version
        return (version.major, version.minor) >= MULTI_FILTER_VERSION

    def stream_config(self) -> StreamConfig:
        """The events stream: every ``<prefix>.>`` subject, file storage, limits retention."""
        return StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )

    async def ensure_stream(self) -> bool:
        """Make the stream if it does not exist; return whether it was made now.

        Several processes may call this at once: adding an identical stream is accepted by
        JetStream, and "already in use" counts as existing.

        Raises:
            nats.errors.Error: NATS is unreachable or refused.
        """
        try:
            await self.js.stream_info(self.stream)
            return False
        except NotFoundError:
            pass
        try:
            await self.js.add_stream(self.stream_config())
        except BadRequestError:  # made by another process meanwhile (config differs slightly)
            await self.js.stream_info(self.stream)
            return False
        return True

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

    @traced_publish
    async def publish_encoded(
        self, event_type: str, position: int, event_id: str, traceparent: str | None, data: bytes
    ) -> int:
        """Publish an envelope already encoded as JSON ``data`` (the relay builds it in SQL).

        Headers: ``Nats-Msg-Id`` = ``event_id`` (JetStream de-duplication), ``Berth-Type``,
        ``Berth-Position`` and the W3C ``traceparent`` if any (at most ``MAX_TRACEPARENT``
        characters, so the headers stay within the margin ``message_limit`` keeps). Returns the
        stream sequence.

        Raises:
            nats.js.errors.NoStreamResponseError: no stream takes the subject (it was lost;
                see ``ensure_stream``).
            nats.errors.Error: NATS is unreachable or did not acknowledge.
        """
        headers = {"Nats-Msg-Id": event_id, "Berth-Type": event_type, "Berth-Position": str(position)}
        if traceparent and len(traceparent) <= MAX_TRACEPARENT:
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


FIRST_CONNECT_ATTEMPTS: Final = 20
"""Tries of the first connection to NATS, 0.5 s apart, before ``connect_bus`` gives up."""


async def connect_bus(
    url: str,
    stream: str,
    prefix: str,
    *,
    name: str = "berth",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    catch_up_seconds: float = DEFAULT_CATCH_UP_SECONDS,
) -> Bus:
    """Connect to NATS and make sure the events stream exists (``Bus.stream_config``).

    Once connected, the client reconnects for ever (logging one line per disconnect, error and
    reconnect), so a restarted NATS — ``berth up`` restarts its embedded one — is picked up without a restart;
    if it came back without the stream, the relay and the consumers make it again.

    Raises:
        nats.errors.NoServersError: NATS did not answer in ``FIRST_CONNECT_ATTEMPTS`` tries.
    """
    nc = await nats.connect(
        url,
        name=name,
        # The first connection: a bounded number of tries (about 10 s when refused), then
        # NoServersError — a process whose NATS never answers stops with that error (and its
        # supervisor restarts it) instead of waiting for ever without listening or heeding
        # SIGTERM.
        max_reconnect_attempts=FIRST_CONNECT_ATTEMPTS,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        error_cb=_error,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
    )
    # Once connected, never give up: an embedded nats-server is restarted, a cluster fails over.
    nc.options["max_reconnect_attempts"] = -1
    bus = Bus(nc, nc.jetstream(), stream, prefix, max_message_bytes, catch_up_seconds)
    await bus.ensure_stream()
    return bus

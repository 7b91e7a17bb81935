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
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

DUPLICATE_WINDOW_SECONDS = 600.0


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
        headers = {
            "Nats-Msg-Id": envelope["event_id"],
            "Berth-Type": envelope["type"],
            "Berth-Position": str(envelope["position"]),
        }
        traceparent = (envelope.get("metadata") or {}).get("traceparent")
        if traceparent:
            headers["traceparent"] = traceparent
        ack = await self.js.publish(
            subject_for(self.prefix, envelope["type"]),
            json.dumps(envelope, separators=(",", ":")).encode(),
            stream=self.stream,
            headers=headers,
        )
        return int(ack.seq)

    async def close(self) -> None:
        """Close the connection (not ``drain``: a drained pull subscription can wait forever)."""
        if not self.nc.is_closed:
            with contextlib.suppress(asyncio.TimeoutError, nats.errors.Error):
                await asyncio.wait_for(self.nc.close(), 5.0)


async def connect_bus(url: str, stream: str, prefix: str, *, name: str = "berth") -> Bus:
    """Connect to NATS and make sure the events stream exists (file storage, limits retention).

    Raises:
        nats.errors.NoServersError: NATS is not reachable.
    """
    nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                            connect_timeout=5)
    js = nc.jetstream()
    config = StreamConfig(
        name=stream, subjects=[f"{prefix}.>"], storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS, duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(config)
    return Bus(nc, js, stream, prefix)

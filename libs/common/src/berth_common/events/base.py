"""The event envelope: payload classes, metadata, and events as recorded in the store.

An event's identity on the wire and in the store is its stable type name plus schema version
(``"manifest.pushed"`` v1), never a Python import path (docs/DESIGN.md §2). Payloads are pydantic models;
their JSON is what the store keeps and what the bus carries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """Base of every event payload.

    Subclasses set ``type_name`` (``"<aggregate>.<fact>"``, past tense), ``schema_version``
    and ``stream_template``: the stream the event belongs to, as a ``str.format`` template over
    its fields (``"feed:{feed}"``), so ``event.stream`` is computed in one place per type.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    type_name: ClassVar[str]
    schema_version: ClassVar[int] = 1
    stream_template: ClassVar[str]

    @property
    def stream(self) -> str:
        """The stream this event is appended to (``"bloblink:dmc/ubuntu@sha256:…"``), from
        ``stream_template`` and the event's fields (docs/ARCHITECTURE.md, "Events are the
        source of truth")."""
        return self.stream_template.format_map(
            {name: getattr(self, name) for name in type(self).model_fields}
        )


@dataclass(frozen=True)
class Metadata:
    """Who and what caused an event: actor, request id, W3C trace context, time."""

    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    actor: str | None = None
    request_id: str | None = None
    traceparent: str | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        """The metadata as stored (``event_id`` is stored in its own column too)."""
        return {
            "event_id": str(self.event_id),
            "actor": self.actor,
            "request_id": self.request_id,
            "traceparent": self.traceparent,
            "occurred_at": self.occurred_at.isoformat(),
        }


@dataclass(frozen=True)
class RecordedEvent:
    """An event as committed: its global ``position``, ``stream`` and per-stream ``version``.

    ``schema_version`` is the version as stored; ``payload`` is already upcast to the current
    class, so the envelope carries the payload's (current) schema version.
    """

    position: int
    stream: str
    version: int
    type: str
    schema_version: int
    payload: Event
    metadata: dict[str, Any]
    event_id: uuid.UUID
    recorded_at: datetime

    def envelope(self) -> dict[str, Any]:
        """The JSON envelope published on the bus and printed by ``berth events tail``."""
        return {
            "position": self.position,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "schema_version": self.payload.schema_version,
            "event_id": str(self.event_id),
            "recorded_at": self.recorded_at.isoformat(),
            "metadata": self.metadata,
            "payload": self.payload.model_dump(mode="json"),
        }

"""Bus envelopes: how an event is carried on the bus, bounded in size whatever its payload.

docs/ARCHITECTURE.md, "Events are the source of truth"; docs/EVENTS.md, "On the bus". The
envelope is ``{position, stream, version, type, schema_version, event_id, recorded_at,
metadata, payload}``. One rule for every event: the payload travels inline only when the
encoded envelope is at most a bound (``Bus.message_limit``); otherwise the envelope leaves it
out and says ``"payload_omitted": true``, and a consumer reads the event from the event store
by position (same database) in the transaction that applies it. Should even that envelope be
over the bound (metadata of pathological size, e.g. a huge client ``X-Request-Id``), the
metadata goes too (``"metadata_omitted": true``). An older Berth published manifest events
with ``"body": ""`` and ``"body_omitted": true``; readers treat that like an omitted payload.

The relay's envelopes are built by PostgreSQL from the stored JSON (no decoding into models
and re-encoding per event in the relay's hot path), in the same query that reads the batch;
only events of an older schema version, to be upcast, take the Python path
(``bus_envelope``), which applies the same rule to its own encoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from berth_common.bus.jetstream import DEFAULT_MAX_MESSAGE_BYTES
from berth_common.db import Connection
from berth_common.events.catalogue import event_class
from berth_common.eventstore.store import read_all

OMITTED: Final = "payload_omitted"
METADATA_OMITTED: Final = "metadata_omitted"
LEGACY_OMITTED: Final = "body_omitted"  # manifest.pushed as published before the bound


@dataclass(frozen=True)
class EncodedEvent:
    """An event as the relay publishes it: ``data`` is the bus envelope's JSON (UTF-8)."""

    position: int
    event_id: str
    type: str
    traceparent: str | None
    recorded_at: datetime
    data: bytes

    @property
    def headers(self) -> tuple[str, int, str, str | None]:
        """``(type, position, event_id, traceparent)``: ``Bus.publish_encoded``'s leading args."""
        return self.type, self.position, self.event_id, self.traceparent


@dataclass(frozen=True)
class EncodedBatch:
    """Events after a position, as envelopes, and ``head``: the last committed position when
    the batch was read (so the relay knows its lag without another query; the position read
    after when there is nothing after it)."""

    head: int
    events: list[EncodedEvent]


# One query: the next batch and the store's head (an InitPlan: one backward scan of the
# primary key). An event's full envelope is built once, as before the bound; only when it is
# over the bound ($3) is the bare one (without payload, then without metadata) built too.
_BATCH_SQL = """
SELECT position, event_id::text AS event_id, type, schema_version, recorded_at,
       metadata->>'traceparent' AS traceparent,
       (SELECT max(position) FROM eventstore.events) AS head,
       CASE WHEN octet_length(full_envelope) <= $3 THEN full_envelope
            ELSE eventstore.bare_envelope(position, stream, version, type, schema_version,
                                          event_id, recorded_at, metadata, $3)
       END AS envelope
  FROM (SELECT *, jsonb_build_object(
                   'position', position, 'stream', stream, 'version', version, 'type', type,
                   'schema_version', schema_version, 'event_id', event_id,
                   'recorded_at', recorded_at, 'metadata', metadata, 'payload', payload
               )::text AS full_envelope
          FROM eventstore.events WHERE position > $1 ORDER BY position LIMIT $2) b
 ORDER BY position
"""


async def read_batch(
    conn: Connection, after: int, limit: int, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> EncodedBatch:
    """Committed events after ``after`` in position order (at most ``limit``), as bus envelopes
    of at most ``max_bytes`` bytes each, with the store's head position. One query, plus one
    per event stored with an older schema version (upcast in Python, ``read_all``), so the bus
    always carries the current version of every payload."""
    rows = await conn.fetch(_BATCH_SQL, after, limit, max_bytes)
    events: list[EncodedEvent] = []
    for row in rows:
        if row["schema_version"] == event_class(row["type"]).schema_version:
            data = row["envelope"].encode()
        else:
            [old] = await read_all(conn, row["position"] - 1, 1)
            data = encode(bus_envelope(old.envelope(), max_bytes))
        events.append(
            EncodedEvent(
                row["position"], row["event_id"], row["type"], row["traceparent"], row["recorded_at"], data
            )
        )
    return EncodedBatch(int(rows[0]["head"]) if rows else after, events)


async def read_encoded(
    conn: Connection, after: int, limit: int, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[EncodedEvent]:
    """The events of ``read_batch`` (without the head)."""
    return (await read_batch(conn, after, limit, max_bytes)).events


def encode(envelope: dict[str, Any]) -> bytes:
    """Compact JSON, as published."""
    return json.dumps(envelope, separators=(",", ":")).encode()


def bus_envelope(envelope: dict[str, Any], max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """``envelope`` (``RecordedEvent.envelope()``) as published within ``max_bytes`` (module
    docstring): unchanged if its encoding fits, else without payload, else without metadata."""
    if len(encode(envelope)) <= max_bytes:
        return envelope
    bare = {k: v for k, v in envelope.items() if k != "payload"} | {OMITTED: True}
    if len(encode(bare)) <= max_bytes:
        return bare
    return {k: v for k, v in bare.items() if k != "metadata"} | {METADATA_OMITTED: True}


def is_omitted(envelope: dict[str, Any]) -> bool:
    """Whether ``envelope`` lacks (part of) its event: a consumer reads the event from the store."""
    return bool(envelope.get(OMITTED) or envelope.get(LEGACY_OMITTED) or "payload" not in envelope)

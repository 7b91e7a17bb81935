"""The shape of a service's published contract: what other services may read or call in its
schema, and the locking rules a reader must follow.

Each service owns one schema and is the only writer of its tables (docs/ARCHITECTURE.md,
"Contracts between services"). Where another service must read its state strongly consistently
(in the same transaction as its own writes), the owner publishes a read-only view (or a
function) and declares it in its ``contracts`` module (``berth_api.contracts``,
``berth_blob.contracts``, ``berth_auth.contracts``); readers use nothing else of the schema.
``tests/contract/test_service_contracts.py`` scans every service's SQL and fails on any
reference to another schema outside its published names. Services never import each other,
so a reader spells the published name in its SQL; the contract module is where the owner
keeps the promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Published:
    """One published view or function of a service's schema.

    Attributes:
        name: schema-qualified (``"api.v_feeds"``).
        kind: ``"view"`` (read-only) or ``"function"``.
        columns: a view's columns (a function's arguments), in order.
        readers: the services (or ``"common"``) that read it today.
        purpose: what a reader learns from it.
        locking: the rule a reader must follow (which lock, when, and what it excludes);
            ``""`` when reading it needs no lock.
    """

    name: str
    kind: Literal["view", "function"]
    columns: tuple[str, ...]
    readers: tuple[str, ...]
    purpose: str
    locking: str = ""


@dataclass(frozen=True)
class Contract:
    """Everything a service publishes to the others.

    Attributes:
        service: the owner (``"api"``).
        schema: its PostgreSQL schema (``"api"``).
        published: its views and functions.
    """

    service: str
    schema: str
    published: tuple[Published, ...]

    def names(self) -> frozenset[str]:
        """The schema-qualified names other services may use."""
        return frozenset(p.name for p in self.published)


EVENTSTORE = Contract(
    service="common",
    schema="eventstore",
    published=(
        Published(
            name="eventstore.events",
            kind="view",
            columns=(
                "position",
                "stream",
                "version",
                "type",
                "schema_version",
                "payload",
                "metadata",
                "event_id",
                "recorded_at",
            ),
            readers=("api",),
            purpose="The append-only event log, read by position or stream (the api's tag history, and"
            " its migration that backfilled feed incarnations). Appends go through"
            " berth_common.eventstore only; a trigger refuses UPDATE and DELETE.",
        ),
    ),
)
"""The event store (owned by ``berth_common.eventstore``): readable by every service."""

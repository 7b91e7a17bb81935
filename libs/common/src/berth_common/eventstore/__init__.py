"""The event store: append with optimistic concurrency, outbox relay, consumers, rebuilds."""

from berth_common.eventstore.consumer import ProjectionConsumer
from berth_common.eventstore.handlers import Handlers, MissingHandler
from berth_common.eventstore.rebuild import ProjectionSpec, rebuild
from berth_common.eventstore.relay import OutboxRelay
from berth_common.eventstore.store import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    EventContext,
    EventStore,
    Projector,
    UnitOfWork,
    joined_unit_of_work,
    run_with_retry,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "ConcurrencyError",
    "EventContext",
    "EventStore",
    "Handlers",
    "MissingHandler",
    "OutboxRelay",
    "ProjectionConsumer",
    "ProjectionSpec",
    "Projector",
    "UnitOfWork",
    "joined_unit_of_work",
    "rebuild",
    "run_with_retry",
]

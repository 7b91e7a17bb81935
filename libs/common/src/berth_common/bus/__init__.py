"""The event bus: NATS JetStream publish/consume with trace context in headers."""

from berth_common.bus.jetstream import (
    Bus,
    connect_bus,
    subject_for,
)

__all__ = ["Bus", "connect_bus", "subject_for"]

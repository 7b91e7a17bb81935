"""Every event knows its stream, and every projector declares what it handles once.

Issue 12, §3: a projector's ``TYPES`` list and its ``match`` were two lists; forgetting one
made ``berth projections rebuild`` silently skip an event the live path applied. These tests
fail loudly on a type no projector handles, a consumer subscribed to a type its projector has
no handler for, and an event emitted to a projector that does not handle it.
"""

from __future__ import annotations

import string
from types import SimpleNamespace
from typing import Any

import pytest

from berth_common.db import Connection
from berth_common.events import (
    BlobDeleted,
    BlobLinked,
    Event,
    FeedDeleted,
    ManifestCached,
    all_types,
)
from berth_common.events.identities import ApiKeyRevoked, UserDisabled
from berth_common.eventstore import EventContext, Handlers, MissingHandler, ProjectionConsumer


def _services() -> list[Any]:
    import berth_api.app
    import berth_auth.app
    import berth_blob.app
    import berth_gc.app

    return [berth_api.app, berth_auth.app, berth_blob.app, berth_gc.app]


def _consumers() -> list[ProjectionConsumer]:
    """Every durable consumer the services start, built on a stand-in bus (no I/O happens)."""
    from berth_blob.consumers.feeds import feed_consumer
    from berth_gc.app import references_consumer

    bus: Any = SimpleNamespace(stream="BERTH_EVENTS", prefix="berth", catch_up_seconds=30.0)
    return [references_consumer(None, bus), feed_consumer(None, bus, None)]  # type: ignore[arg-type]


def test_every_event_type_names_its_stream_from_its_own_fields() -> None:
    for name, cls in all_types().items():
        fields = {f for _, f, _, _ in string.Formatter().parse(cls.stream_template) if f}
        assert fields, f"{name}: a stream template without a field"
        assert fields <= set(cls.model_fields), f"{name}: {fields - set(cls.model_fields)} are not fields"


def test_event_stream_examples() -> None:
    linked = BlobLinked(repository="dmc/ubuntu", digest="sha256:ab", size=1, store="default")
    assert linked.stream == "bloblink:dmc/ubuntu@sha256:ab"
    assert BlobDeleted(store="default", digest="sha256:ab", size=1).stream == "blob:default@sha256:ab"
    assert FeedDeleted(feed="dmc").stream == "feed:dmc"
    assert UserDisabled(user="ann").stream == "user:ann"
    assert ApiKeyRevoked(key_id="k-1").stream == "apikey:k-1"


def test_every_registered_event_type_is_projected_or_declared_ignored_somewhere() -> None:
    declared: set[str] = set()
    for service in _services():
        for spec in service.projections():
            declared |= set(spec.types) | {cls.type_name for cls in spec.projector._ignored}
    for consumer in _consumers():
        declared |= consumer.types
    assert set(all_types()) - declared == set()


def test_every_type_a_consumer_receives_has_a_handler() -> None:
    consumers = _consumers()
    assert len(consumers) == 2
    for consumer in consumers:
        assert isinstance(consumer.projector, Handlers)
        assert consumer.types, consumer.name
        for kind in consumer.types | consumer.bus_types:
            assert consumer.projector.handles(kind), f"{consumer.name}: no handler for {kind}"


def test_every_projection_rebuilds_exactly_what_it_handles() -> None:
    for service in _services():
        for spec in service.projections():
            assert spec.types == spec.projector.types and spec.types, spec.name


def test_a_consumer_of_a_type_without_handler_is_refused() -> None:
    handlers = Handlers("t")

    @handlers.on(FeedDeleted)
    async def _deleted(conn: Connection, event: Event, ctx: EventContext) -> None: ...

    bus: Any = SimpleNamespace(stream="S", prefix="berth", catch_up_seconds=1.0)
    with pytest.raises(ValueError, match="no handler"):
        ProjectionConsumer(None, bus, "c", "t.positions", handlers, ["feed.deleted", "feed.created"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not applied"):
        ProjectionConsumer(None, bus, "c", "t.positions", handlers, bus_types=["feed.created"])  # type: ignore[arg-type]


def test_a_class_declared_twice_is_refused() -> None:
    handlers = Handlers("t")
    handlers.ignore(FeedDeleted)
    with pytest.raises(ValueError, match="declared twice"):
        handlers.on(FeedDeleted)(_noop)


async def _noop(conn: Connection, event: Event, ctx: EventContext) -> None: ...


async def test_an_event_without_handler_fails_loudly() -> None:
    from berth_api.projections.tables import project

    event = ManifestCached.model_construct(repository="a/b", digest="sha256:ab")
    handlers = Handlers("t")
    handlers.on(FeedDeleted)(_noop)
    ctx = EventContext("feed:x", None, "e", None)  # type: ignore[arg-type]
    with pytest.raises(MissingHandler, match=r"manifest\.cached"):
        await handlers(None, event, ctx)  # type: ignore[arg-type]
    with pytest.raises(MissingHandler, match=r"blob\.linked"):
        await project(None, BlobLinked(repository="a/b", digest="d", size=1, store="s"), ctx)  # type: ignore[arg-type]

"""A projector declared once: one handler per event class, the consumed types derived from it.

Before, a projector had a ``TYPES`` list (what a rebuild and a consumer read) and a ``match``
(what it applies) — two lists that had to agree, and forgetting one made ``berth projections
rebuild`` silently skip an event the live path applied. A ``Handlers`` registry is both:

    handlers = Handlers("api")

    @handlers.on(FeedCreated)
    async def _feed_created(conn, event, ctx): ...

``handlers.types`` is what a rebuild replays and a consumer subscribes to; calling ``handlers``
applies an event and raises ``MissingHandler`` for a class it neither handles nor ``ignore``\\ s,
so an event emitted without a handler fails loudly in the first test that emits it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from berth_common.db import Connection
from berth_common.events import Event
from berth_common.eventstore.store import EventContext

H = TypeVar("H", bound=Callable[[Connection, Any, EventContext], Awaitable[None]])
Handler = Callable[[Connection, Any, EventContext], Awaitable[None]]


class MissingHandler(LookupError):
    """An event of a class the projector neither handles nor declared as ignored."""


class Handlers:
    """A projector: event class → handler, from which ``types`` is derived.

    Args:
        name: the projection's name, for error messages (``"api"``).

    Handlers are exact per class: a subclass (``ManifestCached`` of ``ManifestPushed``) is named
    explicitly in ``on`` so that its type is consumed and rebuilt too.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: dict[type[Event], Handler] = {}
        self._ignored: set[type[Event]] = set()

    def on(self, *classes: type[Event]) -> Callable[[H], H]:
        """Decorator: the function handles events of ``classes``.

        Raises:
            ValueError: a class already has a handler (or is ignored) in this projector.
        """

        def register(fn: H) -> H:
            for cls in classes:
                self._claim(cls)
                self._handlers[cls] = fn
            return fn

        return register

    def ignore(self, *classes: type[Event]) -> None:
        """Declare that events of ``classes`` may be emitted with this projector and change none
        of its tables (``signingkey.created``: the key row is written by the command itself).
        They are not in ``types``."""
        for cls in classes:
            self._claim(cls)
            self._ignored.add(cls)

    def _claim(self, cls: type[Event]) -> None:
        if cls in self._handlers or cls in self._ignored:
            raise ValueError(f"{self.name}: {cls.type_name} declared twice")

    @property
    def types(self) -> tuple[str, ...]:
        """The type names this projector applies, in declaration order."""
        return tuple(cls.type_name for cls in self._handlers)

    def handles(self, type_name: str) -> bool:
        """Whether events named ``type_name`` have a handler here."""
        return type_name in self.types

    async def __call__(self, conn: Connection, event: Event, ctx: EventContext) -> None:
        """Apply ``event`` with its handler (a ``Projector``).

        Raises:
            MissingHandler: the event's class has no handler and was not declared ignored.
        """
        handler = self._handlers.get(type(event))
        if handler is not None:
            await handler(conn, event, ctx)
        elif type(event) not in self._ignored:
            raise MissingHandler(f"projector {self.name!r} has no handler for {event.type_name}")

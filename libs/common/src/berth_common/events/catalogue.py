"""The catalogue of event types by stable name, and the upcasters of old schema versions.

Old stored versions are never rewritten: when an event is read, its payload is upcast step by
step (``v1 → v2 → …``) to the current class's schema version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from berth_common.events.base import Event

E = TypeVar("E", bound=type[Event])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_TYPES: dict[str, type[Event]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class UnknownEventType(LookupError):
    """An event type name that no registered class carries."""


def register(cls: E) -> E:
    """Class decorator: enter ``cls`` in the catalogue under ``cls.type_name``.

    Raises:
        ValueError: the name is already taken by another class.
    """
    existing = _TYPES.get(cls.type_name)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {cls.type_name!r} registered twice")
    _TYPES[cls.type_name] = cls
    return cls


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register a function that turns a ``from_version`` payload into the next one."""

    def wrap(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(type_name, from_version)] = fn
        return fn

    return wrap


def event_class(type_name: str) -> type[Event]:
    """The class registered for ``type_name``. Raises ``UnknownEventType``."""
    try:
        return _TYPES[type_name]
    except KeyError:
        raise UnknownEventType(type_name) from None


def all_types() -> dict[str, type[Event]]:
    """Every registered type name → class (a copy)."""
    return dict(_TYPES)


def decode(type_name: str, schema_version: int, payload: dict[str, Any]) -> Event:
    """Build the current payload object from a stored ``(type, version, payload)``.

    Raises:
        UnknownEventType: the type is not in the catalogue.
        ValueError: no upcaster bridges a stored version, or the payload does not validate.
    """
    cls = event_class(type_name)
    version = schema_version
    while version < cls.schema_version:
        step = _UPCASTERS.get((type_name, version))
        if step is None:
            raise ValueError(f"no upcaster for {type_name} v{version}")
        payload = step(payload)
        version += 1
    if version != cls.schema_version:
        raise ValueError(f"{type_name} v{schema_version} is newer than this code (v{cls.schema_version})")
    return cls.model_validate(payload)


def legacy_key(repository_or_feed: str) -> str:
    """The location key (``berth_common.storage.Location``) where a feed created before named
    stores keeps its blobs — for upcasting events recorded before they existed:
    ``"dmc/ubuntu"`` or ``"dmc"`` → ``"default/feeds/dmc"``."""
    from berth_common.storage.layout import Location

    return Location.legacy(repository_or_feed.split("/", 1)[0]).key

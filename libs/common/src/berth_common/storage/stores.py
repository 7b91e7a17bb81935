"""The configured blob stores by name, each an instrumented driver (docs/ARCHITECTURE.md, "Stores").

Built once per process from ``Settings.store_settings()``; a feed names its store, and every
service that touches blobs resolves a ``Location`` to its store's driver here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .base import StorageDriver
from .factory import Place, create_driver, place_of
from .instrumented import InstrumentedDriver
from .layout import Location


class StoreConfig(Protocol):
    """What ``Stores`` needs of one store's settings (``berth_common.settings.StorageSettings``)."""

    @property
    def kind(self) -> str:
        """The driver kind (``create_driver``'s first argument)."""
        ...

    @property
    def redirect(self) -> bool:
        """Whether blob GETs answer 307 to a presigned URL."""
        ...

    def driver_options(self) -> dict[str, Any]:
        """``create_driver``'s keyword arguments."""
        ...


class UnknownStore(LookupError):
    """A location names a store that is not configured."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"store {name!r} is not configured (configured: {', '.join(known)})")


def check_disjoint(places: Mapping[str, Place]) -> None:
    """Refuse stores that share a place or nest in one another (``factory.place_of``).

    Blobs are deduplicated, and collected, per store: two stores on one bucket, container or
    folder would each count only their own feeds' references to a file both serve, and
    garbage collection in one would delete content the other's manifests still reference.

    Raises:
        ValueError: naming the first two stores that overlap.
    """
    names = sorted(places)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            (where, path), (other, other_path) = places[first], places[second]
            shortest = min(len(path), len(other_path))
            if where == other and path[:shortest] == other_path[:shortest]:
                raise ValueError(
                    f"stores {first!r} and {second!r} share a place (the same or nested"
                    " root, bucket or container and prefix): each store needs its own"
                )


class Stores:
    """Named stores: ``driver(location)`` and whether blob GETs ``redirect`` to presigned URLs.

    Args:
        drivers: store name → driver (the caller's; ``close`` closes them all).
        redirect: names of stores whose blob GETs answer 307 to a presigned URL when the driver
            can sign one.
    """

    def __init__(self, drivers: Mapping[str, StorageDriver], redirect: frozenset[str] = frozenset()) -> None:
        self._drivers, self._redirect = dict(drivers), redirect

    @classmethod
    def from_settings(cls, settings: Mapping[str, StoreConfig]) -> Stores:
        """Instrumented drivers for every configured store.

        Raises:
            ValueError: a store's kind or options are invalid (``create_driver``), or two stores
                share or nest in one place (``check_disjoint``).
        """
        check_disjoint({name: place_of(c.kind, c.driver_options()) for name, c in settings.items()})
        drivers: dict[str, StorageDriver] = {
            name: InstrumentedDriver(create_driver(config.kind, **config.driver_options()))
            for name, config in settings.items()
        }
        return cls(drivers, frozenset(n for n, c in settings.items() if c.redirect))

    @property
    def names(self) -> list[str]:
        """Configured store names, sorted."""
        return sorted(self._drivers)

    def driver(self, location: Location | str) -> StorageDriver:
        """The driver of a location's store (or of the store named ``location``).

        Raises:
            UnknownStore: the store is not configured.
        """
        name = location.store if isinstance(location, Location) else location
        try:
            return self._drivers[name]
        except KeyError:
            raise UnknownStore(name, self.names) from None

    def redirects(self, location: Location) -> bool:
        """Whether blob GETs of ``location`` answer 307 to a presigned URL (when one can be made)."""
        return location.store in self._redirect

    async def close(self) -> None:
        """Close every driver."""
        for driver in self._drivers.values():
            await driver.close()

"""Fixtures of the black-box OCI Distribution spec v1.1 conformance suite.

The suite talks HTTP only, so it runs unchanged against two targets, chosen by the environment
variable ``BERTH_SPEC_TARGET``:

- ``"berth"`` (default): Berth, through ``tests.support.berth_app.berth_client()``, an async
  context manager yielding ``(client, create_feed)``. Without it the whole target is skipped.
- ``"reference"``: CNCF Distribution 2.8 (``docker-registry``), started once per session with
  ``tests.support.reference.reference_registry``. Tests marked ``berth_only`` (behaviour that
  Distribution 2.8 lacks or gets wrong with respect to the spec) are skipped there.

Repositories are ``FEED/IMAGE``: one feed per session (``spec<hex>``), one fresh image per test.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

TARGET = os.environ.get("BERTH_SPEC_TARGET", "berth")
SPEC_DIR = Path(__file__).resolve().parent
TIMEOUT = httpx.Timeout(30.0)


@dataclass
class Registry:
    """The registry under test: an HTTP client on its base URL and the session's feed.

    Attributes:
        target: ``"berth"`` or ``"reference"``.
        client: ``httpx.AsyncClient`` whose base_url is the registry root; never follows redirects.
        base_url: the registry root, e.g. ``"http://127.0.0.1:5000"``.
        feed: the first path component shared by every repository of this session.
    """

    target: str
    client: httpx.AsyncClient
    base_url: str
    feed: str
    create_feed: Callable[[str], Awaitable[object]] | None = None

    def __post_init__(self) -> None:
        self._counter = itertools.count(1)

    def new_repo(self) -> str:
        """A repository name ``FEED/img<n>`` never used before in this session."""
        return f"{self.feed}/img{next(self._counter)}"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``berth_only`` marker."""
    config.addinivalue_line(
        "markers",
        "berth_only: spec behaviour CNCF Distribution 2.8 lacks; skipped when BERTH_SPEC_TARGET=reference",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the reference target, skip this suite's tests marked ``berth_only``."""
    if TARGET != "reference":
        return
    skip = pytest.mark.skip(reason="berth_only: Distribution 2.8 lacks or deviates from this behaviour")
    for item in items:
        if SPEC_DIR in Path(str(item.fspath)).parents and item.get_closest_marker("berth_only"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def reference_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start Distribution 2.8 once per session; yields ``"http://127.0.0.1:PORT"``."""
    from tests.support.reference import reference_registry

    try:
        with reference_registry(tmp_path_factory.mktemp("reference")) as host:
            yield f"http://{host}"
    except FileNotFoundError as exc:
        pytest.skip(f"reference registry unavailable: {exc}")


async def _berth_registry() -> AsyncIterator[Registry]:
    try:
        from tests.support.berth_app import berth_client
    except ImportError as exc:
        pytest.skip(
            f"berth target unavailable: tests.support.berth_app.berth_client cannot be imported ({exc})"
        )
    async with berth_client() as (client, create_feed):
        client.follow_redirects = False
        feed = f"spec{secrets.token_hex(4)}"
        await create_feed(feed)
        yield Registry("berth", client, str(client.base_url).rstrip("/"), feed, create_feed)


@pytest.fixture(scope="session")
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[Registry]:
    """The registry under test for the whole session (see the module docstring)."""
    if TARGET == "reference":
        base_url = request.getfixturevalue("reference_url")
        async with httpx.AsyncClient(base_url=base_url, follow_redirects=False, timeout=TIMEOUT) as client:
            yield Registry("reference", client, base_url, f"spec{secrets.token_hex(4)}")
    elif TARGET == "berth":
        async for reg in _berth_registry():
            yield reg
    else:
        raise pytest.UsageError(f"BERTH_SPEC_TARGET must be 'berth' or 'reference', not {TARGET!r}")


@pytest.fixture
def client(registry: Registry) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on the registry root (follow_redirects=False)."""
    return registry.client


@pytest.fixture
def repo(registry: Registry) -> str:
    """A fresh repository name ``FEED/IMAGE``, unique to this test."""
    return registry.new_repo()


@pytest.fixture
def other_repo(registry: Registry) -> str:
    """A second fresh repository in the same feed (the source of cross-repository mounts)."""
    return registry.new_repo()


@pytest.fixture
def feed(registry: Registry) -> str:
    """The session's feed name (first component of every repository)."""
    return registry.feed

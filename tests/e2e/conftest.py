"""Fixtures for the end-to-end tests: the registry under test and image layouts.

``BERTH_E2E_TARGET`` picks the registry: ``berth`` (default) runs ``berth up`` against a fresh
PostgreSQL database and a unique NATS JetStream stream on this machine's services; ``reference``
runs CNCF Distribution 2.8, so the tests can be checked against the reference implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import nats
import pytest
from nats.js.errors import NotFoundError

from tests.e2e import oci_layout
from tests.e2e.clients import Podman
from tests.support.berth_process import BerthProcess, berth_process
from tests.support.databases import NATS_URL, PG_ADMIN, database_url
from tests.support.reference import reference_registry

ADMIN_DATABASE_URL = PG_ADMIN  # the machine's, or a container's (tests/support/stores.py)
MOUNT_QUERY = "SELECT count(*) FROM eventstore.events WHERE type = 'blob.mounted'"

Kind = Literal["berth", "reference"]
T = TypeVar("T")


def target_kind() -> Kind:
    """The registry under test from ``BERTH_E2E_TARGET`` (``berth`` unless it says ``reference``).

    Raises:
        pytest.UsageError: for any other value.
    """
    value = os.environ.get("BERTH_E2E_TARGET", "berth").strip().lower()
    if value not in ("berth", "reference"):
        raise pytest.UsageError(f"BERTH_E2E_TARGET must be 'berth' or 'reference', not {value!r}")
    return "berth" if value == "berth" else "reference"


def fresh_name(prefix: str = "e2e") -> str:
    """A new lowercase repository-name component, e.g. ``e2e3f9a1c0b``."""
    return f"{prefix}{secrets.token_hex(4)}"


@dataclass
class Registry:
    """The registry under test, as the tests see it.

    ``host`` is ``"127.0.0.1:PORT"``; ``database_url`` is set only for Berth.
    """

    host: str
    kind: Kind
    server: BerthProcess | None = None
    database_url: str | None = None
    feeds: list[str] = field(default_factory=list)

    def new_feed(self) -> str:
        """Create (on Berth) or invent (on the reference) a fresh feed and return its name."""
        feed = fresh_name()
        if self.server is not None:
            self.server.create_feed(feed)
        self.feeds.append(feed)
        return feed

    def new_repo(self, image: str = "img", feed: str | None = None) -> str:
        """A fresh repository name ``FEED/IMAGE``; a new feed is made unless ``feed`` is given."""
        return f"{feed or self.new_feed()}/{image}"

    def mount_count(self) -> int | None:
        """How many ``blob.mounted`` events the event store holds; ``None`` on the reference."""
        if self.database_url is None:
            return None
        return _run_sync(_fetch_count(self.database_url))


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a private event loop and return its result.

    Unlike ``asyncio.run`` this leaves the thread's current loop (pytest-asyncio's session loop)
    untouched. Must not be called while a loop runs in this thread.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _fetch_count(database_url: str) -> int:
    """Run MOUNT_QUERY on ``database_url``."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(MOUNT_QUERY))
    finally:
        await conn.close()


async def _admin(statement: str) -> None:
    """Execute one statement on the ``postgres`` maintenance database."""
    conn = await asyncpg.connect(ADMIN_DATABASE_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _delete_stream(name: str) -> None:
    """Delete JetStream stream ``name`` if it exists."""
    nc = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """Create database ``berth_e2e_<random>``, yield its URL, drop it afterwards."""
    name = f"berth_e2e_{secrets.token_hex(6)}"
    _run_sync(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield database_url(name)
    finally:
        _run_sync(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def scratch_stream() -> Iterator[str]:
    """Yield a unique stream name ``BERTH_E2E_<RANDOM>`` and delete that stream afterwards."""
    name = f"BERTH_E2E_{secrets.token_hex(6).upper()}"
    try:
        yield name
    finally:
        _run_sync(_delete_stream(name))


@pytest.fixture(scope="session")
def registry_kind() -> Kind:
    """``"berth"`` or ``"reference"``, from ``BERTH_E2E_TARGET``."""
    return target_kind()


@pytest.fixture(scope="session")
def registry(registry_kind: Kind, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The running registry under test for the whole session (see :class:`Registry`)."""
    workdir = tmp_path_factory.mktemp("registry")
    if registry_kind == "reference":
        with reference_registry(workdir) as host:
            yield Registry(host=host, kind="reference")
        return
    with (
        scratch_database() as database_url,
        scratch_stream() as stream,
        berth_process(workdir, database_url=database_url, nats_url=NATS_URL, stream=stream) as server,
    ):
        yield Registry(host=server.host, kind="berth", server=server, database_url=database_url)


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A fresh short folder under /tmp (embedded PostgreSQL's unix socket path must stay short),
    removed after the test with whatever servers left in it (about 200 MB with PostgreSQL)."""
    root = Path(tempfile.mkdtemp(prefix="berth-e2e-", dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def podman() -> Iterator[Podman]:
    """podman with its storage in a fresh short folder under /tmp, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="e2e-pm", dir="/tmp"))
    try:
        yield Podman(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide OCI layout with ``v1`` (busybox, amd64) and ``multi`` (amd64 + arm64 index)."""
    path = tmp_path_factory.mktemp("layout") / "oci"
    oci_layout.build_image(path, "v1")
    oci_layout.build_index(path, "multi")
    return path

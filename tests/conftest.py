"""Session-wide test setup: the object stores (and, with containers, PostgreSQL and NATS) that
``tests/support/stores.py`` decides how to run; the pytest header says which it chose."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.support import stores

_services = contextlib.ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    """With containers, start PostgreSQL and NATS before any test module reads their URLs."""
    os.environ.update(_services.enter_context(stores.database_services()))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop what ``pytest_configure`` started."""
    _services.close()


def pytest_report_header(config: pytest.Config) -> str:
    """E.g. ``stores: processes: moto S3 server and Azurite as local processes; …``."""
    return stores.decide().describe()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[stores.S3Server]:
    """One S3 server for the whole run (tests use fresh buckets)."""
    with stores.s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def azure_server() -> Iterator[stores.AzureServer]:
    """One Azurite for the whole run (tests use fresh containers)."""
    with stores.azure_server() as server:
        yield server
